"""The events of the orders domain: what happened to customers, products and orders."""

from __future__ import annotations

from uuid import UUID

from cqrskit.messages import DomainEvent
from orders.domain.values import Address, Money, OrderLine

__all__ = [
    "ALL_EVENTS",
    "CustomerRegistered",
    "EmailClaimed",
    "OrderCancelled",
    "OrderItemAdded",
    "OrderPlaced",
    "OrderShipped",
    "ProductAdded",
    "ProductPriceChanged",
    "ProductRestocked",
    "SkuClaimed",
    "StockReleased",
    "StockReserved",
]


class CustomerRegistered(DomainEvent):
    """A customer signed up."""

    customer_id: UUID
    name: str
    email: str


class EmailClaimed(DomainEvent):
    """An e-mail address (normalized) was taken by a customer: it is unique from now on."""

    email: str
    customer_id: UUID


class ProductAdded(DomainEvent):
    """A product entered the catalog with its first stock."""

    product_id: UUID
    sku: str
    name: str
    price: Money
    stock: int


class SkuClaimed(DomainEvent):
    """A SKU (normalized) was taken by a product: it is unique from now on."""

    sku: str
    product_id: UUID


class ProductRestocked(DomainEvent):
    """Units arrived in stock."""

    product_id: UUID
    quantity: int


class ProductPriceChanged(DomainEvent):
    """The catalog price changed; orders already placed keep their price."""

    product_id: UUID
    old_price: Money
    price: Money


class StockReserved(DomainEvent):
    """Units were set aside for an order."""

    product_id: UUID
    order_id: UUID
    quantity: int


class StockReleased(DomainEvent):
    """Units reserved for an order went back to stock (the order was cancelled)."""

    product_id: UUID
    order_id: UUID
    quantity: int


class OrderPlaced(DomainEvent):
    """A customer placed an order; lines carry the catalog prices of that moment."""

    order_id: UUID
    customer_id: UUID
    lines: tuple[OrderLine, ...]
    shipping_address: Address
    total: Money


class OrderItemAdded(DomainEvent):
    """A line was added to a placed order."""

    order_id: UUID
    line: OrderLine
    total: Money
    """The order's new total."""


class OrderShipped(DomainEvent):
    """The order left the warehouse."""

    order_id: UUID
    tracking_number: str


class OrderCancelled(DomainEvent):
    """The order was cancelled; its stock is released in the same append."""

    order_id: UUID
    reason: str
    total: Money
    """The total of the cancelled order (what no longer counts as revenue)."""


ALL_EVENTS: tuple[type[DomainEvent], ...] = (
    CustomerRegistered,
    EmailClaimed,
    ProductAdded,
    SkuClaimed,
    ProductRestocked,
    ProductPriceChanged,
    StockReserved,
    StockReleased,
    OrderPlaced,
    OrderItemAdded,
    OrderShipped,
    OrderCancelled,
)
"""Every event type of the service, for the event registry."""
