"""The commands of the orders service: what a client may ask it to change."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from cqrskit import Command
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
    "AddOrderItem",
    "AddProduct",
    "CancelOrder",
    "ChangeProductPrice",
    "ItemRequest",
    "PlaceOrder",
    "RegisterCustomer",
    "RestockProduct",
    "ShipOrder",
]


class RegisterCustomer(Command):
    """Register a customer; the e-mail address must not be registered yet."""

    customer_id: UUID = Field(default_factory=uuid4)
    name: Name
    email: Email


class AddProduct(Command):
    """Add a product to the catalog; the SKU must not be taken."""

    product_id: UUID = Field(default_factory=uuid4)
    sku: Sku
    name: Name
    price: Money
    stock: Stock


class RestockProduct(Command):
    """Add units to a product's stock."""

    product_id: UUID
    quantity: Quantity
    expected_version: int | None = None


class ChangeProductPrice(Command):
    """Change a product's catalog price (placed orders keep theirs)."""

    product_id: UUID
    price: Money
    expected_version: int | None = None


class ItemRequest(BaseModel):
    """A product and how many units of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: UUID
    quantity: Quantity


class PlaceOrder(Command):
    """Place an order: prices come from the catalog; stock is reserved in the same append.

    ``acting_customer_id`` is set when a customer (not staff) sends it: the order must be
    the customer's own.
    """

    order_id: UUID = Field(default_factory=uuid4)
    customer_id: UUID
    items: Annotated[tuple[ItemRequest, ...], Field(min_length=1, max_length=MAX_LINES)]
    shipping_address: Address
    acting_customer_id: UUID | None = None


class AddOrderItem(Command):
    """Add a line to a placed order, reserving its stock."""

    order_id: UUID
    product_id: UUID
    quantity: Quantity
    acting_customer_id: UUID | None = None
    expected_version: int | None = None


class ShipOrder(Command):
    """Ship a placed order with a tracking number."""

    order_id: UUID
    tracking_number: TrackingNumber
    expected_version: int | None = None


class CancelOrder(Command):
    """Cancel an order that has not shipped; its stock is released."""

    order_id: UUID
    reason: Reason
    acting_customer_id: UUID | None = None
    expected_version: int | None = None
