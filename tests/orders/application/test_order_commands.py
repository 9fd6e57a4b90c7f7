"""PlaceOrder, AddOrderItem, ShipOrder, CancelOrder through a real bus."""

from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from cqrskit import AggregateNotFound, Command, DomainError
from cqrskit.errors import UnexpectedVersion
from cqrskit.testing import CommandScenario
from orders.application.commands import (
    AddOrderItem,
    CancelOrder,
    ChangeProductPrice,
    ItemRequest,
    PlaceOrder,
    ShipOrder,
)
from orders.domain import (
    Customer,
    InsufficientStock,
    Order,
    OrderCancelled,
    OrderItemAdded,
    OrderLine,
    OrderNotModifiable,
    OrderPlaced,
    OrderShipped,
    Product,
    StockReleased,
    StockReserved,
)

from .conftest import ADDRESS, added, registered

ADA = uuid4()
BOB = uuid4()
TEA = uuid4()
CUP = uuid4()


@pytest.fixture
def shop(scenario: CommandScenario) -> CommandScenario:
    """Two customers, and two products in the catalog: 10 teas at 4.50, 3 cups at 12.00."""
    return (
        scenario.given(Customer, str(ADA), registered(ADA, "Ada"))
        .given(Customer, str(BOB), registered(BOB, "Bob"))
        .given(Product, str(TEA), added(TEA, "TEA-1", "4.50", 10))
        .given(Product, str(CUP), added(CUP, "CUP-1", "12.00", 3))
    )


def tea_line(quantity: int, price: str = "4.50") -> OrderLine:
    return OrderLine(
        product_id=TEA, sku="TEA-1", name="Tea-1", unit_price=Decimal(price), quantity=quantity
    )


def cup_line(quantity: int) -> OrderLine:
    return OrderLine(
        product_id=CUP, sku="CUP-1", name="Cup-1", unit_price=Decimal("12.00"), quantity=quantity
    )


def place(order_id: UUID, *items: tuple[UUID, int], **fields: object) -> PlaceOrder:
    return PlaceOrder.model_validate(
        {
            "order_id": order_id,
            "customer_id": ADA,
            "items": [ItemRequest(product_id=p, quantity=q) for p, q in items],
            "shipping_address": ADDRESS,
            **fields,
        }
    )


async def send(shop: CommandScenario, command: Command) -> None:
    """Run a setup command; unlike ``bus.send`` it stores the scenario's given events first."""
    await shop.when(command)
    assert shop.error is None, shop.error


async def placed_order(shop: CommandScenario, *items: tuple[UUID, int]) -> UUID:
    """An order of Ada's, placed through the bus."""
    order_id = uuid4()
    await send(shop, place(order_id, *(items or ((TEA, 2),))))
    return order_id


# -- PlaceOrder --------------------------------------------------------------------------


async def test_place_order_reserves_stock_and_prices_from_the_catalog(
    shop: CommandScenario,
) -> None:
    order_id = uuid4()
    await shop.when(place(order_id, (TEA, 2), (CUP, 1)))
    assert shop.result is not None
    assert shop.result.aggregate_id == str(order_id)
    await shop.then(
        {
            (Order, str(order_id)): [
                OrderPlaced(
                    order_id=order_id,
                    customer_id=ADA,
                    lines=(tea_line(2), cup_line(1)),
                    shipping_address=ADDRESS,
                    total=Decimal("21.00"),
                )
            ],
            (Product, str(TEA)): [StockReserved(product_id=TEA, order_id=order_id, quantity=2)],
            (Product, str(CUP)): [StockReserved(product_id=CUP, order_id=order_id, quantity=1)],
        }
    )


async def test_prices_come_from_the_catalog_after_a_price_change(shop: CommandScenario) -> None:
    await send(shop, ChangeProductPrice(product_id=TEA, price=Decimal("5.10")))
    order_id = uuid4()
    await shop.when(place(order_id, (TEA, 3)))
    [placed] = [e.event for e in await shop.new_events() if isinstance(e.event, OrderPlaced)]
    assert placed.lines == (tea_line(3, "5.10"),)
    assert placed.total == Decimal("15.30")


async def test_the_client_cannot_set_prices() -> None:
    # The command has no place for a price, a name or a SKU: they come from the catalog.
    assert set(ItemRequest.model_fields) == {"product_id", "quantity"}
    with pytest.raises(ValueError, match="unit_price"):
        ItemRequest.model_validate({"product_id": TEA, "quantity": 1, "unit_price": "0.01"})


async def test_a_customer_may_place_their_own_order(shop: CommandScenario) -> None:
    await shop.when(place(uuid4(), (TEA, 1), acting_customer_id=ADA))
    assert shop.error is None
    assert shop.result is not None


async def test_a_customer_cannot_order_for_another(shop: CommandScenario) -> None:
    with pytest.raises(AggregateNotFound) as caught:
        await shop.when(place(uuid4(), (TEA, 1), acting_customer_id=BOB))
    assert (caught.value.aggregate_type, caught.value.aggregate_id) == ("Customer", str(ADA))
    assert await shop.new_events() == []


async def test_an_unknown_customer_is_not_found(shop: CommandScenario) -> None:
    stranger = uuid4()
    with pytest.raises(AggregateNotFound) as caught:
        await shop.when(place(uuid4(), (TEA, 1), customer_id=stranger))
    assert caught.value.aggregate_id == str(stranger)
    assert await shop.new_events() == []


async def test_an_unknown_product_is_not_found_and_named(shop: CommandScenario) -> None:
    missing = uuid4()
    with pytest.raises(AggregateNotFound) as caught:
        await shop.when(place(uuid4(), (TEA, 1), (missing, 1)))
    assert (caught.value.aggregate_type, caught.value.aggregate_id) == ("Product", str(missing))
    assert str(missing) in str(caught.value)
    assert await shop.new_events() == []


async def test_insufficient_stock_names_the_product_and_writes_nothing(
    shop: CommandScenario,
) -> None:
    await shop.when(place(uuid4(), (TEA, 2), (CUP, 4)))
    await shop.then_raises(InsufficientStock, match=f"CUP-1 ({CUP}): requested 4, available 3")
    assert isinstance(shop.error, InsufficientStock)
    assert shop.error.product_id == str(CUP)


async def test_the_same_product_twice_is_refused_naming_it(shop: CommandScenario) -> None:
    await shop.when(place(uuid4(), (TEA, 1), (CUP, 1), (TEA, 2)))
    await shop.then_raises(DomainError, match=f"product {TEA} appears more than once")


async def test_an_order_id_that_exists_is_refused(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    await shop.when(place(order_id, (CUP, 1)))
    await shop.then_raises(DomainError, match=f"order {order_id} already exists")


# -- AddOrderItem ------------------------------------------------------------------------


async def test_add_item_reserves_stock_at_the_catalog_price(shop: CommandScenario) -> None:
    order_id = await placed_order(shop, (TEA, 2))
    await shop.when(AddOrderItem(order_id=order_id, product_id=CUP, quantity=2))
    assert shop.result is not None
    assert shop.result.aggregate_id == str(order_id)
    await shop.then(
        {
            (Order, str(order_id)): [
                OrderItemAdded(order_id=order_id, line=cup_line(2), total=Decimal("33.00"))
            ],
            (Product, str(CUP)): [StockReserved(product_id=CUP, order_id=order_id, quantity=2)],
        }
    )


async def test_add_item_after_cancel_is_refused(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    await send(shop, CancelOrder(order_id=order_id, reason="oops"))
    await shop.when(AddOrderItem(order_id=order_id, product_id=CUP, quantity=1))
    await shop.then_raises(OrderNotModifiable, match="cancelled")


async def test_add_item_beyond_stock_is_refused(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    await shop.when(AddOrderItem(order_id=order_id, product_id=CUP, quantity=4))
    await shop.then_raises(InsufficientStock, match="CUP-1")


async def test_add_item_of_an_unknown_product_is_not_found(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    with pytest.raises(AggregateNotFound, match="Product"):
        await shop.when(AddOrderItem(order_id=order_id, product_id=uuid4(), quantity=1))


async def test_add_item_to_another_customers_order_is_not_found(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    with pytest.raises(AggregateNotFound) as caught:
        await shop.when(
            AddOrderItem(order_id=order_id, product_id=CUP, quantity=1, acting_customer_id=BOB)
        )
    assert (caught.value.aggregate_type, caught.value.aggregate_id) == ("Order", str(order_id))
    assert await shop.new_events() == []


# -- ShipOrder ---------------------------------------------------------------------------


async def test_ship_order(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    await shop.when(ShipOrder(order_id=order_id, tracking_number="TRACK-1"))
    await shop.then(
        {(Order, str(order_id)): [OrderShipped(order_id=order_id, tracking_number="TRACK-1")]}
    )


async def test_ship_an_unknown_order_is_not_found(shop: CommandScenario) -> None:
    with pytest.raises(AggregateNotFound, match="Order"):
        await shop.when(ShipOrder(order_id=uuid4(), tracking_number="TRACK-1"))


async def test_a_cancelled_order_cannot_ship(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    await send(shop, CancelOrder(order_id=order_id, reason="oops"))
    await shop.when(ShipOrder(order_id=order_id, tracking_number="TRACK-1"))
    await shop.then_raises(OrderNotModifiable, match="cannot be shipped")


# -- CancelOrder -------------------------------------------------------------------------


async def test_cancel_releases_every_lines_stock(shop: CommandScenario) -> None:
    order_id = await placed_order(shop, (TEA, 2), (CUP, 1))
    await shop.when(CancelOrder(order_id=order_id, reason="changed my mind"))
    await shop.then(
        {
            (Order, str(order_id)): [
                OrderCancelled(order_id=order_id, reason="changed my mind", total=Decimal("21.00"))
            ],
            (Product, str(TEA)): [StockReleased(product_id=TEA, order_id=order_id, quantity=2)],
            (Product, str(CUP)): [StockReleased(product_id=CUP, order_id=order_id, quantity=1)],
        }
    )
    # The released units can be ordered again.
    await shop.when(place(uuid4(), (TEA, 10), (CUP, 3)))
    assert shop.error is None


async def test_cancel_releases_items_added_later(shop: CommandScenario) -> None:
    order_id = await placed_order(shop, (TEA, 2))
    await send(shop, AddOrderItem(order_id=order_id, product_id=CUP, quantity=3))
    await shop.when(CancelOrder(order_id=order_id, reason="too much"))
    released = {
        e.event.product_id: e.event.quantity
        for e in await shop.new_events()
        if isinstance(e.event, StockReleased)
    }
    assert released == {TEA: 2, CUP: 3}


async def test_a_shipped_order_cannot_be_cancelled(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    await send(shop, ShipOrder(order_id=order_id, tracking_number="TRACK-1"))
    await shop.when(CancelOrder(order_id=order_id, reason="too late"))
    await shop.then_raises(OrderNotModifiable, match="shipped")


async def test_a_cancelled_order_cannot_be_cancelled_again(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    await send(shop, CancelOrder(order_id=order_id, reason="oops"))
    await shop.when(CancelOrder(order_id=order_id, reason="again"))
    await shop.then_raises(OrderNotModifiable, match="cancelled")


async def test_a_customer_may_cancel_their_own_order(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    await shop.when(CancelOrder(order_id=order_id, reason="mine", acting_customer_id=ADA))
    assert shop.error is None


async def test_cancel_of_another_customers_order_is_not_found(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    with pytest.raises(AggregateNotFound) as caught:
        await shop.when(CancelOrder(order_id=order_id, reason="hers", acting_customer_id=BOB))
    assert caught.value.aggregate_id == str(order_id)
    assert await shop.new_events() == []


# -- If-Match ----------------------------------------------------------------------------


async def test_order_commands_honour_the_expected_version(shop: CommandScenario) -> None:
    order_id = await placed_order(shop)
    with pytest.raises(UnexpectedVersion) as caught:
        await shop.when(ShipOrder(order_id=order_id, tracking_number="T", expected_version=2))
    assert (caught.value.aggregate_type, caught.value.expected, caught.value.actual) == (
        "Order",
        2,
        1,
    )
    assert await shop.new_events() == []
    await shop.when(AddOrderItem(order_id=order_id, product_id=CUP, quantity=1, expected_version=1))
    await shop.when(CancelOrder(order_id=order_id, reason="r", expected_version=2))
    assert shop.error is None


async def test_a_wrong_version_does_not_reveal_another_customers_order(
    shop: CommandScenario,
) -> None:
    order_id = await placed_order(shop)
    with pytest.raises(AggregateNotFound):
        await shop.when(
            CancelOrder(order_id=order_id, reason="r", acting_customer_id=BOB, expected_version=9)
        )
