"""Value objects of the orders domain: money, quantities, addresses, order lines."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "MAX_LINES",
    "MAX_QUANTITY",
    "Address",
    "Email",
    "Money",
    "Name",
    "OrderLine",
    "OrderStatus",
    "Quantity",
    "Reason",
    "Sku",
    "TrackingNumber",
    "normalize_email",
    "normalize_sku",
]

MAX_QUANTITY = 10_000
"""The most units of one product on one order line, or in one restock."""

MAX_LINES = 100
"""The most lines one order may have."""

Money = Annotated[
    Decimal,
    Field(ge=Decimal("0.01"), le=Decimal("1000000000"), max_digits=12, decimal_places=2),
]
"""An amount in the shop's currency: a positive decimal with at most two decimal places.
Never a binary float; in JSON a decimal string such as ``"19.99"``."""

Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
"""A number of units: at least 1."""

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
TrackingNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)
]
Sku = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    ),
]
"""A stock-keeping unit: letters, digits, '.', '_' and '-'; compared case-insensitively."""

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
]
"""An e-mail address (a plausibility check, not RFC 5322); compared case-insensitively."""


def normalize_email(email: str) -> str:
    """The form under which an e-mail address is unique."""
    return email.strip().casefold()


def normalize_sku(sku: str) -> str:
    """The form under which a SKU is unique."""
    return sku.strip().upper()


class OrderStatus(StrEnum):
    """Where an order is in its life."""

    PLACED = "placed"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Address(_Value):
    """Where an order is shipped."""

    street: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    city: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
    ]
    country: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]


class OrderLine(_Value):
    """A product on an order, at the catalog price when it was added."""

    product_id: UUID
    sku: str
    name: str
    unit_price: Money
    quantity: Quantity

    @property
    def total(self) -> Decimal:
        """Unit price times quantity."""
        return self.unit_price * self.quantity
