"""Value objects of the orders domain: money, quantities, addresses, order lines."""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Final
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "MAX_LINES",
    "MAX_QUANTITY",
    "MAX_STOCK",
    "Address",
    "Email",
    "Money",
    "Name",
    "OrderLine",
    "OrderStatus",
    "Quantity",
    "Reason",
    "Sku",
    "Stock",
    "TrackingNumber",
    "normalize_email",
    "normalize_sku",
    "refuse_control_characters",
]

MAX_QUANTITY = 10_000
"""The most units of one product on one order line, or in one restock."""

MAX_LINES = 100
"""The most lines one order may have."""

MAX_STOCK = 1_000_000_000
"""The most units of a product a new catalog entry may start with."""

Money = Annotated[
    Decimal,
    Field(ge=Decimal("0.01"), le=Decimal("1000000000"), max_digits=12, decimal_places=2),
]
"""An amount in the shop's currency: a positive decimal with at most two decimal places.
Never a binary float; in JSON a decimal string such as ``"19.99"``."""

Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
"""A number of units: at least 1."""

Stock = Annotated[int, Field(ge=0, le=MAX_STOCK)]
"""A product's starting stock: none at all is allowed."""

# C0 controls but tab, line feed and carriage return; DEL; C1 controls; lone surrogates.
_CONTROL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def refuse_control_characters(text: str) -> str:
    """``text`` unchanged, unless it holds a character no text field may hold.

    NUL cannot be stored by PostgreSQL at all, lone surrogates cannot be encoded as UTF-8,
    and other control characters only ever arrive to corrupt logs or terminals: all are
    refused (a 422 naming the field). Everything else is kept verbatim, bidirectional
    overrides and long combining sequences included: they are legitimate in some scripts,
    are escaped in JSON answers, and the length limits bound them.
    """
    found = _CONTROL.search(text)
    if found is not None:
        raise ValueError(f"must not contain control characters (found U+{ord(found.group()):04X})")
    return text


_Plain = AfterValidator(refuse_control_characters)

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), _Plain
]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), _Plain
]
TrackingNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), _Plain
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
    _Plain,
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

    street: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), _Plain
    ]
    city: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), _Plain
    ]
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20), _Plain
    ]
    country: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100), _Plain
    ]


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
