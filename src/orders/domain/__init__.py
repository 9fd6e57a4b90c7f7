"""Orders domain: the aggregates, their events, value objects and the rules they enforce."""

from orders.domain.customer import Customer, EmailReservation
from orders.domain.errors import EmailTaken, InsufficientStock, OrderNotModifiable, SkuTaken
from orders.domain.events import (
    ALL_EVENTS,
    CustomerRegistered,
    EmailClaimed,
    OrderCancelled,
    OrderItemAdded,
    OrderPlaced,
    OrderShipped,
    ProductAdded,
    ProductPriceChanged,
    ProductRestocked,
    SkuClaimed,
    StockReleased,
    StockReserved,
)
from orders.domain.order import Order
from orders.domain.product import Product, SkuReservation
from orders.domain.values import (
    Address,
    Money,
    OrderLine,
    OrderStatus,
    Quantity,
    normalize_email,
    normalize_sku,
)

__all__ = [
    "ALL_EVENTS",
    "Address",
    "Customer",
    "CustomerRegistered",
    "EmailClaimed",
    "EmailReservation",
    "EmailTaken",
    "InsufficientStock",
    "Money",
    "Order",
    "OrderCancelled",
    "OrderItemAdded",
    "OrderLine",
    "OrderNotModifiable",
    "OrderPlaced",
    "OrderShipped",
    "OrderStatus",
    "Product",
    "ProductAdded",
    "ProductPriceChanged",
    "ProductRestocked",
    "Quantity",
    "SkuClaimed",
    "SkuReservation",
    "SkuTaken",
    "StockReleased",
    "StockReserved",
    "normalize_email",
    "normalize_sku",
]
