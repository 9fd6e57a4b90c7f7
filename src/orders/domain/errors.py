"""The business rules the orders domain refuses to break, as typed errors."""

from __future__ import annotations

from cqrskit.errors import DomainError

__all__ = [
    "EmailTaken",
    "InsufficientStock",
    "OrderNotModifiable",
    "SkuTaken",
]


class EmailTaken(DomainError):
    """Another customer registered with this e-mail address."""

    def __init__(self, email: str) -> None:
        self.email = email
        super().__init__(f"the e-mail address {email!r} is already registered")


class SkuTaken(DomainError):
    """Another product has this SKU."""

    def __init__(self, sku: str) -> None:
        self.sku = sku
        super().__init__(f"the SKU {sku!r} is already in the catalog")


class InsufficientStock(DomainError):
    """An order asked for more units than a product has available."""

    def __init__(self, product_id: str, sku: str, requested: int, available: int) -> None:
        self.product_id = product_id
        self.sku = sku
        self.requested = requested
        self.available = available
        super().__init__(
            f"insufficient stock for product {sku} ({product_id}): requested {requested}, "
            f"available {available}"
        )


class OrderNotModifiable(DomainError):
    """The order's status does not allow this change (e.g. shipping a cancelled order)."""

    def __init__(self, order_id: str, status: str, action: str) -> None:
        self.order_id = order_id
        self.status = status
        self.action = action
        super().__init__(f"order {order_id} is {status}: it cannot be {action}")
