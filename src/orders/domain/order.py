"""Orders: placed with catalog prices, then extended, shipped or cancelled."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from uuid import UUID

from pydantic import TypeAdapter, ValidationError

from cqrskit.aggregate import Aggregate
from cqrskit.errors import DomainError
from cqrskit.messages import DomainEvent
from orders.domain.errors import OrderNotModifiable
from orders.domain.events import OrderCancelled, OrderItemAdded, OrderPlaced, OrderShipped
from orders.domain.values import MAX_LINES, Address, Money, OrderLine, OrderStatus

__all__ = ["Order"]

_money: TypeAdapter[Decimal] = TypeAdapter(Money)


class Order(Aggregate):
    """A customer's order. Lines carry the catalog price of the moment they were added,
    and there is at most one line per product."""

    category = "Order"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.customer_id: UUID | None = None
        self.status: OrderStatus | None = None
        self.lines: tuple[OrderLine, ...] = ()
        self.shipping_address: Address | None = None
        self.total = Decimal(0)
        self.tracking_number: str | None = None

    @classmethod
    def place(
        cls,
        order_id: UUID,
        customer_id: UUID,
        lines: Sequence[OrderLine],
        shipping_address: Address,
    ) -> Order:
        """A new order of ``lines`` (at least one, one per product)."""
        if not lines:
            raise DomainError("an order needs at least one line")
        if len(lines) > MAX_LINES:
            raise DomainError(f"an order may have at most {MAX_LINES} lines, not {len(lines)}")
        _refuse_repeated_products(lines)
        order = cls(str(order_id))
        order.record(
            OrderPlaced(
                order_id=order_id,
                customer_id=customer_id,
                lines=tuple(lines),
                shipping_address=shipping_address,
                total=_order_total(lines),
            )
        )
        return order

    @property
    def order_id(self) -> UUID:
        """The id as the events carry it."""
        return UUID(self.id)

    def add_item(self, line: OrderLine) -> None:
        """Add a line for a product not yet on the order; only while the order is placed."""
        self._require_placed("changed")
        if len(self.lines) >= MAX_LINES:
            raise DomainError(f"order {self.id} already has the most lines allowed ({MAX_LINES})")
        lines = (*self.lines, line)
        _refuse_repeated_products(lines)
        self.record(OrderItemAdded(order_id=self.order_id, line=line, total=_order_total(lines)))

    def ship(self, tracking_number: str) -> None:
        """Mark the order shipped; only a placed order can ship."""
        self._require_placed("shipped")
        self.record(OrderShipped(order_id=self.order_id, tracking_number=tracking_number))

    def cancel(self, reason: str) -> None:
        """Cancel the order; a shipped or already cancelled order cannot be.

        The caller releases the reserved stock of every line in the same append.
        """
        self._require_placed("cancelled")
        self.record(OrderCancelled(order_id=self.order_id, reason=reason, total=self.total))

    def quantities_by_product(self) -> dict[UUID, int]:
        """Units ordered of each product: what the order has reserved."""
        quantities: dict[UUID, int] = {}
        for line in self.lines:
            quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
        return quantities

    def _require_placed(self, action: str) -> None:
        if self.status is not OrderStatus.PLACED:
            raise OrderNotModifiable(self.id, self.status or "not placed", action)

    def apply(self, event: DomainEvent) -> None:
        match event:
            case OrderPlaced():
                self.customer_id = event.customer_id
                self.lines = event.lines
                self.shipping_address = event.shipping_address
                self.total = event.total
                self.status = OrderStatus.PLACED
            case OrderItemAdded(line=line, total=total):
                self.lines = (*self.lines, line)
                self.total = total
            case OrderShipped(tracking_number=tracking_number):
                self.tracking_number = tracking_number
                self.status = OrderStatus.SHIPPED
            case OrderCancelled():
                self.status = OrderStatus.CANCELLED
            case _:
                super().apply(event)


def _refuse_repeated_products(lines: Iterable[OrderLine]) -> None:
    # One line per product keeps a product's reservation for the order equal to its line.
    seen: set[UUID] = set()
    for line in lines:
        if line.product_id in seen:
            raise DomainError(f"product {line.sku} ({line.product_id}) is already on the order")
        seen.add(line.product_id)


def _order_total(lines: Iterable[OrderLine]) -> Decimal:
    total = sum((line.total for line in lines), Decimal(0))
    try:
        # Checked here so that an oversized order is a domain error, not a failure to
        # build the event.
        return _money.validate_python(total)
    except ValidationError:
        raise DomainError(f"an order total of {total} is more than the shop accepts") from None
