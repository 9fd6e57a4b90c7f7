"""The bodies of the HTTP API: what requests carry and what commands answer.

Requests refuse unknown fields and use the domain's bounded value types, so an oversized,
out-of-range or control-character-laden value is a 422 naming the field before any
command is built.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orders.domain.values import (
    MAX_LINES,
    Address,
    Email,
    Money,
    Name,
    Quantity,
    Reason,
    Sku,
    Stock,
    TrackingNumber,
)

__all__ = [
    "AddProductBody",
    "CancelBody",
    "CustomerCreated",
    "ItemBody",
    "OrderChanged",
    "PlaceOrderBody",
    "PriceBody",
    "ProductChanged",
    "ProjectionInfo",
    "RegisterCustomerBody",
    "RestockBody",
    "ShipBody",
]


class _Body(BaseModel):
    """A request body: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class RegisterCustomerBody(_Body):
    """A new customer."""

    name: Name
    email: Email


class AddProductBody(_Body):
    """A new catalog product."""

    sku: Sku
    name: Name
    price: Money
    stock: Stock


class RestockBody(_Body):
    """Units to add to a product's stock."""

    quantity: Quantity


class PriceBody(_Body):
    """A product's new price."""

    price: Money


class ItemBody(_Body):
    """A product and how many units of it."""

    product_id: UUID
    quantity: Quantity


class PlaceOrderBody(_Body):
    """An order: its customer, up to 100 lines of distinct products, and where it goes."""

    customer_id: UUID
    items: Annotated[list[ItemBody], Field(min_length=1, max_length=MAX_LINES)]
    shipping_address: Address

    @model_validator(mode="after")
    def _distinct_products(self) -> PlaceOrderBody:
        seen: set[UUID] = set()
        for item in self.items:
            if item.product_id in seen:
                raise ValueError(f"product {item.product_id} appears more than once in items")
            seen.add(item.product_id)
        return self


class ShipBody(_Body):
    """The shipment's tracking number."""

    tracking_number: TrackingNumber


class CancelBody(_Body):
    """Why the order is cancelled."""

    reason: Reason


class CustomerCreated(BaseModel):
    """The id of the new customer."""

    customer_id: UUID


class ProductChanged(BaseModel):
    """The id of the product added or changed."""

    product_id: UUID


class OrderChanged(BaseModel):
    """The id of the order placed or changed."""

    order_id: UUID


class ProjectionInfo(BaseModel):
    """Where one projection is: its state, checkpoint, lag and parked events."""

    name: str
    version: int | None
    state: str
    checkpoint: str | None
    events_behind: int | None
    seconds_behind: float | None
    parked: int
    last_error: str | None
