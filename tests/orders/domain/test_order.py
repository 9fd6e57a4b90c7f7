"""Order: placing, adding items, shipping and cancelling, and what each status allows."""

from decimal import Decimal
from uuid import uuid4

import pytest

from cqrskit import DomainError, DomainEvent
from cqrskit.testing import AggregateScenario
from orders.domain import (
    Address,
    Order,
    OrderCancelled,
    OrderItemAdded,
    OrderLine,
    OrderNotModifiable,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
)
from orders.domain.values import MAX_LINES

ORDER = uuid4()
ADA = uuid4()
ADDRESS = Address(street="1 Main St", city="Springfield", postal_code="12345", country="US")


def line(price: str = "4.50", quantity: int = 2, sku: str = "TEA-1") -> OrderLine:
    return OrderLine(
        product_id=uuid4(), sku=sku, name=sku.title(), unit_price=Decimal(price), quantity=quantity
    )


TEA = line("4.50", 2, "TEA-1")
CUP = line("12.00", 1, "CUP-1")
PLACED = OrderPlaced(
    order_id=ORDER,
    customer_id=ADA,
    lines=(TEA,),
    shipping_address=ADDRESS,
    total=Decimal("9.00"),
)
SHIPPED = OrderShipped(order_id=ORDER, tracking_number="TRACK-1")
CANCELLED = OrderCancelled(order_id=ORDER, reason="changed my mind", total=Decimal("9.00"))


def scenario(*history: DomainEvent) -> AggregateScenario:
    return AggregateScenario(Order, str(ORDER)).given(PLACED, *history)


def test_place_totals_the_lines() -> None:
    order = Order.place(ORDER, ADA, [TEA, CUP], ADDRESS)
    assert order.stream_id == f"Order-{ORDER}"
    assert (order.status, order.customer_id, order.lines, order.total) == (
        OrderStatus.PLACED,
        ADA,
        (TEA, CUP),
        Decimal("21.00"),
    )
    [event] = order.collect_events()
    assert event == OrderPlaced(
        order_id=ORDER,
        customer_id=ADA,
        lines=(TEA, CUP),
        shipping_address=ADDRESS,
        total=Decimal("21.00"),
        metadata=event.metadata,
    )


def test_an_order_needs_a_line() -> None:
    with pytest.raises(DomainError, match="at least one line"):
        Order.place(ORDER, ADA, [], ADDRESS)


def test_a_product_appears_on_one_line_only() -> None:
    with pytest.raises(DomainError, match="already on the order"):
        Order.place(ORDER, ADA, [TEA, TEA.model_copy(update={"quantity": 1})], ADDRESS)


def test_an_order_has_at_most_max_lines() -> None:
    with pytest.raises(DomainError, match=f"at most {MAX_LINES} lines"):
        Order.place(ORDER, ADA, [line() for _ in range(MAX_LINES + 1)], ADDRESS)


def test_a_total_beyond_what_money_holds_is_a_domain_error() -> None:
    huge = line("999999999.00", 10_000)
    with pytest.raises(DomainError, match="more than the shop accepts"):
        Order.place(ORDER, ADA, [huge], ADDRESS)


def test_rebuilt_from_its_stream() -> None:
    order = Order.from_events(str(ORDER), [PLACED, SHIPPED])
    assert (order.status, order.customer_id, order.lines, order.total) == (
        OrderStatus.SHIPPED,
        ADA,
        (TEA,),
        Decimal("9.00"),
    )
    assert (order.tracking_number, order.shipping_address) == ("TRACK-1", ADDRESS)


def test_add_item_records_the_line_and_the_new_total() -> None:
    s = scenario().when(lambda o: o.add_item(CUP))
    s.then(OrderItemAdded(order_id=ORDER, line=CUP, total=Decimal("21.00")))
    assert isinstance(s.aggregate, Order)
    assert (s.aggregate.lines, s.aggregate.total) == ((TEA, CUP), Decimal("21.00"))


def test_add_item_of_a_product_already_on_the_order_is_refused() -> None:
    scenario().when(lambda o: o.add_item(TEA.model_copy(update={"quantity": 5}))).then_raises(
        DomainError, match="already on the order"
    )


def test_add_item_beyond_max_lines_is_refused() -> None:
    full = PLACED.model_copy(
        update={"lines": tuple(line("1.00", 1) for _ in range(MAX_LINES)), "total": MAX_LINES}
    )
    AggregateScenario(Order, str(ORDER)).given(full).when(lambda o: o.add_item(CUP)).then_raises(
        DomainError, match="most lines"
    )


@pytest.mark.parametrize(("history", "status"), [(SHIPPED, "shipped"), (CANCELLED, "cancelled")])
def test_add_item_only_while_placed(history: OrderShipped | OrderCancelled, status: str) -> None:
    scenario(history).when(lambda o: o.add_item(CUP)).then_raises(
        OrderNotModifiable, match=f"is {status}: it cannot be changed"
    )


def test_ship_a_placed_order() -> None:
    s = scenario().when(lambda o: o.ship("TRACK-1")).then(SHIPPED)
    assert isinstance(s.aggregate, Order)
    assert s.aggregate.status is OrderStatus.SHIPPED


@pytest.mark.parametrize(("history", "status"), [(SHIPPED, "shipped"), (CANCELLED, "cancelled")])
def test_ship_only_when_placed(history: OrderShipped | OrderCancelled, status: str) -> None:
    scenario(history).when(lambda o: o.ship("TRACK-2")).then_raises(
        OrderNotModifiable, match=f"is {status}: it cannot be shipped"
    )


def test_cancel_records_the_order_total() -> None:
    s = scenario(OrderItemAdded(order_id=ORDER, line=CUP, total=Decimal("21.00")))
    s.when(lambda o: o.cancel("changed my mind")).then(
        OrderCancelled(order_id=ORDER, reason="changed my mind", total=Decimal("21.00"))
    )
    assert isinstance(s.aggregate, Order)
    assert s.aggregate.status is OrderStatus.CANCELLED


@pytest.mark.parametrize(("history", "status"), [(SHIPPED, "shipped"), (CANCELLED, "cancelled")])
def test_cancel_not_when_shipped_or_cancelled(
    history: OrderShipped | OrderCancelled, status: str
) -> None:
    scenario(history).when(lambda o: o.cancel("too late")).then_raises(
        OrderNotModifiable, match=f"is {status}: it cannot be cancelled"
    )


def test_quantities_by_product_are_what_the_order_reserved() -> None:
    order = Order.from_events(
        str(ORDER), [PLACED, OrderItemAdded(order_id=ORDER, line=CUP, total=Decimal("21.00"))]
    )
    assert order.quantities_by_product() == {TEA.product_id: 2, CUP.product_id: 1}
