"""Products in the catalog: price, stock and units reserved for orders; and SKU uniqueness."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from cqrskit.aggregate import Aggregate
from cqrskit.errors import DomainError
from cqrskit.messages import DomainEvent
from orders.domain.errors import InsufficientStock, SkuTaken
from orders.domain.events import (
    ProductAdded,
    ProductPriceChanged,
    ProductRestocked,
    SkuClaimed,
    StockReleased,
    StockReserved,
)
from orders.domain.values import normalize_sku

__all__ = ["Product", "SkuReservation"]


class Product(Aggregate):
    """A catalog product whose available stock never goes below zero.

    The product counts the units reserved for orders and not given back, and refuses to
    release more than that: releasing can never create stock. Which order holds how many
    units is the order's own record (its lines); cancelling an order releases exactly
    those, once, in the order's own append. The product keeps no per-order map: every
    order for it would grow the product's state (and its snapshots) for good.

    Every order appends to the streams of its products, so they grow without end: the
    product supports snapshots, and the service loads products from them.
    """

    category = "Product"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.sku = ""
        self.name = ""
        self.price = Decimal(0)
        self.available = 0
        self.reserved = 0
        """Units reserved for orders and not released (shipped orders' units included)."""

    @classmethod
    def add(cls, product_id: UUID, sku: str, name: str, price: Decimal, stock: int) -> Product:
        """A new product with ``stock`` units; the SKU is claimed through
        :class:`SkuReservation` in the same append."""
        if stock < 0:
            raise DomainError(f"the stock of a new product cannot be negative (got {stock})")
        product = cls(str(product_id))
        product.record(
            ProductAdded(product_id=product_id, sku=sku, name=name, price=price, stock=stock)
        )
        return product

    @property
    def product_id(self) -> UUID:
        """The id as the events carry it."""
        return UUID(self.id)

    def restock(self, quantity: int) -> None:
        """Add ``quantity`` units to the stock."""
        _require_positive(quantity, "restock")
        self.record(ProductRestocked(product_id=self.product_id, quantity=quantity))

    def change_price(self, price: Decimal) -> None:
        """Set the catalog price; an unchanged price records nothing."""
        if price == self.price:
            return
        self.record(
            ProductPriceChanged(product_id=self.product_id, old_price=self.price, price=price)
        )

    def reserve(self, order_id: UUID, quantity: int) -> None:
        """Set ``quantity`` units aside for ``order_id``; :class:`InsufficientStock` if fewer
        are available."""
        _require_positive(quantity, "reserve")
        if quantity > self.available:
            raise InsufficientStock(self.id, self.sku, quantity, self.available)
        self.record(StockReserved(product_id=self.product_id, order_id=order_id, quantity=quantity))

    def release(self, order_id: UUID, quantity: int) -> None:
        """Give back ``quantity`` units that ``order_id`` reserved; never more than are
        reserved for all orders together."""
        _require_positive(quantity, "release")
        if quantity > self.reserved:
            raise DomainError(
                f"cannot release {quantity} units of product {self.sku} ({self.id}) for "
                f"order {order_id}: only {self.reserved} are reserved"
            )
        self.record(StockReleased(product_id=self.product_id, order_id=order_id, quantity=quantity))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case ProductAdded(sku=sku, name=name, price=price, stock=stock):
                self.sku = sku
                self.name = name
                self.price = price
                self.available = stock
            case ProductRestocked(quantity=quantity):
                self.available += quantity
            case ProductPriceChanged(price=price):
                self.price = price
            case StockReserved(quantity=quantity):
                self.available -= quantity
                self.reserved += quantity
            case StockReleased(quantity=quantity):
                self.available += quantity
                self.reserved -= quantity
            case _:
                super().apply(event)

    def snapshot_state(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "name": self.name,
            "price": str(self.price),
            "available": self.available,
            "reserved": self.reserved,
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        self.sku = state["sku"]
        self.name = state["name"]
        self.price = Decimal(state["price"])
        self.available = state["available"]
        self.reserved = state["reserved"]


class SkuReservation(Aggregate):
    """One stream per normalized SKU; its first event is the only claim (see
    :class:`~orders.domain.customer.EmailReservation` for why a stream)."""

    category = "ProductSku"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.product_id: UUID | None = None

    @classmethod
    def id_for(cls, sku: str) -> str:
        """The reservation id of ``sku``: its normalized form."""
        return normalize_sku(sku)

    def claim(self, product_id: UUID) -> None:
        """Give the SKU to ``product_id``; :class:`SkuTaken` if it is already taken."""
        if self.product_id is not None:
            raise SkuTaken(self.id)
        self.record(SkuClaimed(sku=self.id, product_id=product_id))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case SkuClaimed(product_id=product_id):
                self.product_id = product_id
            case _:
                super().apply(event)


def _require_positive(quantity: int, action: str) -> None:
    if quantity < 1:
        raise DomainError(f"cannot {action} {quantity} units: the quantity must be at least 1")
