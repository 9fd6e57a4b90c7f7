"""Product and SkuReservation: catalog, stock reserved for orders, unique SKUs."""

import json
from decimal import Decimal
from uuid import uuid4

import pytest

from cqrskit import DomainError
from cqrskit.testing import AggregateScenario
from orders.domain import (
    InsufficientStock,
    Product,
    ProductAdded,
    ProductPriceChanged,
    ProductRestocked,
    SkuClaimed,
    SkuReservation,
    SkuTaken,
    StockReleased,
    StockReserved,
)

TEA = uuid4()
ORDER = uuid4()
OTHER_ORDER = uuid4()
ADDED = ProductAdded(product_id=TEA, sku="TEA-1", name="Tea", price=Decimal("4.50"), stock=10)


def scenario() -> AggregateScenario:
    return AggregateScenario(Product, str(TEA)).given(ADDED)


def test_add_records_the_product_with_its_stock() -> None:
    product = Product.add(TEA, "TEA-1", "Tea", Decimal("4.50"), 10)
    assert product.stream_id == f"Product-{TEA}"
    assert (product.sku, product.name, product.price, product.available) == (
        "TEA-1",
        "Tea",
        Decimal("4.50"),
        10,
    )
    [event] = product.collect_events()
    assert event == ADDED.model_copy(update={"metadata": event.metadata})


def test_a_product_may_start_without_stock() -> None:
    assert Product.add(TEA, "TEA-1", "Tea", Decimal("4.50"), 0).available == 0


def test_negative_initial_stock_is_refused() -> None:
    with pytest.raises(DomainError, match="negative"):
        Product.add(TEA, "TEA-1", "Tea", Decimal("4.50"), -1)


def test_restock_adds_units() -> None:
    s = scenario().when(lambda p: p.restock(5)).then(ProductRestocked(product_id=TEA, quantity=5))
    assert isinstance(s.aggregate, Product)
    assert s.aggregate.available == 15


@pytest.mark.parametrize("quantity", [0, -3])
def test_restock_needs_a_positive_quantity(quantity: int) -> None:
    scenario().when(lambda p: p.restock(quantity)).then_raises(DomainError, match="at least 1")


def test_change_price_records_old_and_new() -> None:
    s = scenario().when(lambda p: p.change_price(Decimal("5.00")))
    s.then(ProductPriceChanged(product_id=TEA, old_price=Decimal("4.50"), price=Decimal("5.00")))
    assert isinstance(s.aggregate, Product)
    assert s.aggregate.price == Decimal("5.00")


def test_an_unchanged_price_records_nothing() -> None:
    scenario().when(lambda p: p.change_price(Decimal("4.5"))).then()


def test_reserve_takes_units_for_an_order() -> None:
    s = scenario().when(lambda p: p.reserve(ORDER, 10))
    s.then(StockReserved(product_id=TEA, order_id=ORDER, quantity=10))
    product = s.aggregate
    assert isinstance(product, Product)
    assert (product.available, product.reserved) == (0, 10)


def test_reserving_more_than_available_names_the_product() -> None:
    scenario().given(StockReserved(product_id=TEA, order_id=OTHER_ORDER, quantity=8)).when(
        lambda p: p.reserve(ORDER, 3)
    ).then_raises(InsufficientStock, match=f"TEA-1 ({TEA}): requested 3, available 2")


def test_insufficient_stock_carries_the_numbers() -> None:
    product = Product.from_events(str(TEA), [ADDED])
    with pytest.raises(InsufficientStock) as caught:
        product.reserve(ORDER, 11)
    error = caught.value
    assert (error.product_id, error.sku, error.requested, error.available) == (
        str(TEA),
        "TEA-1",
        11,
        10,
    )
    assert product.available == 10


def test_reserve_needs_a_positive_quantity() -> None:
    scenario().when(lambda p: p.reserve(ORDER, 0)).then_raises(DomainError, match="at least 1")


def test_release_gives_back_what_the_order_reserved() -> None:
    s = (
        scenario()
        .given(StockReserved(product_id=TEA, order_id=ORDER, quantity=4))
        .when(lambda p: p.release(ORDER, 4))
        .then(StockReleased(product_id=TEA, order_id=ORDER, quantity=4))
    )
    product = s.aggregate
    assert isinstance(product, Product)
    assert (product.available, product.reserved) == (10, 0)


def test_release_may_be_partial() -> None:
    s = (
        scenario()
        .given(StockReserved(product_id=TEA, order_id=ORDER, quantity=4))
        .when(lambda p: p.release(ORDER, 1))
        .then(StockReleased(product_id=TEA, order_id=ORDER, quantity=1))
    )
    assert isinstance(s.aggregate, Product)
    assert (s.aggregate.available, s.aggregate.reserved) == (7, 3)


def test_release_cannot_create_stock() -> None:
    scenario().given(StockReserved(product_id=TEA, order_id=ORDER, quantity=2)).when(
        lambda p: p.release(ORDER, 3)
    ).then_raises(DomainError, match="only 2 are reserved")


def test_release_without_any_reservation_is_refused() -> None:
    scenario().when(lambda p: p.release(ORDER, 1)).then_raises(DomainError, match="only 0")


def test_a_released_reservation_cannot_be_released_again() -> None:
    scenario().given(
        StockReserved(product_id=TEA, order_id=ORDER, quantity=2),
        StockReleased(product_id=TEA, order_id=ORDER, quantity=2),
    ).when(lambda p: p.release(ORDER, 2)).then_raises(DomainError, match="only 0")


def test_releases_never_raise_stock_above_what_was_added_and_restocked() -> None:
    # Reserved and available always add up to the stock ever added: whatever the releases,
    # none can push available past it (the per-order record is the order's lines).
    history = [
        ADDED,
        StockReserved(product_id=TEA, order_id=ORDER, quantity=3),
        StockReserved(product_id=TEA, order_id=OTHER_ORDER, quantity=4),
        ProductRestocked(product_id=TEA, quantity=5),
        StockReleased(product_id=TEA, order_id=ORDER, quantity=3),
    ]
    product = Product.from_events(str(TEA), history)
    assert (product.available, product.reserved) == (11, 4)
    with pytest.raises(DomainError, match="only 4 are reserved"):
        product.release(OTHER_ORDER, 5)
    product.release(OTHER_ORDER, 4)
    assert (product.available, product.reserved) == (15, 0)


def test_a_snapshot_restores_the_state_of_a_full_replay() -> None:
    history = [
        ADDED,
        StockReserved(product_id=TEA, order_id=ORDER, quantity=3),
        ProductPriceChanged(product_id=TEA, old_price=Decimal("4.50"), price=Decimal("4.75")),
        StockReserved(product_id=TEA, order_id=OTHER_ORDER, quantity=2),
        StockReleased(product_id=TEA, order_id=ORDER, quantity=1),
    ]
    replayed = Product.from_events(str(TEA), history)
    state = replayed.snapshot_state()
    restored = Product(str(TEA))
    # Through JSON, as the stores keep it.
    restored.restore_state(json.loads(json.dumps(state)))
    assert vars(restored) | {"version": 0} == vars(replayed) | {"version": 0}
    assert (restored.price, restored.available, restored.reserved) == (Decimal("4.75"), 6, 4)


def test_a_product_snapshot_does_not_grow_with_orders() -> None:
    reservations = [StockReserved(product_id=TEA, order_id=uuid4(), quantity=1) for _ in range(10)]
    product = Product.from_events(str(TEA), [ADDED, *reservations])
    assert product.snapshot_state() == {
        "sku": "TEA-1",
        "name": "Tea",
        "price": "4.50",
        "available": 0,
        "reserved": 10,
    }


def test_the_sku_reservation_id_is_the_normalized_sku() -> None:
    assert SkuReservation.id_for(" tea-1 ") == "TEA-1"
    assert SkuReservation.stream_id_for("TEA-1") == "ProductSku-TEA-1"


def test_a_free_sku_is_claimed() -> None:
    AggregateScenario(SkuReservation, "TEA-1").when(lambda r: r.claim(TEA)).then(
        SkuClaimed(sku="TEA-1", product_id=TEA)
    )


def test_a_claimed_sku_is_refused() -> None:
    AggregateScenario(SkuReservation, "TEA-1").given(SkuClaimed(sku="TEA-1", product_id=TEA)).when(
        lambda r: r.claim(uuid4())
    ).then_raises(SkuTaken, match="TEA-1")
