"""The order-details read model, the same tests on SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from orders_projection_support import START, Shop, Stores, project

from cqrskit.projection import Projection
from cqrskit.readstore import RedisReadStore, SqlReadStore, open_sql_read_store
from cqrskit.store.memory import MemoryEventStore
from orders.application.views import OrderDetailsReader
from orders.domain.values import OrderStatus
from orders.projections import (
    OrderDetailsRedisProjection,
    OrderDetailsSqlProjection,
    RedisOrderDetailsReader,
    SqlOrderDetailsReader,
)


@dataclass
class Details:
    """The order-details projection and its reader on one store."""

    projection: Projection[Any]
    reader: OrderDetailsReader
    store: Any


def details_on(store: Any) -> Details:
    if isinstance(store, RedisReadStore):
        return Details(OrderDetailsRedisProjection(), RedisOrderDetailsReader(store), store)
    assert isinstance(store, SqlReadStore)
    return Details(OrderDetailsSqlProjection(), SqlOrderDetailsReader(store), store)


@pytest.fixture
async def details(stores: Stores) -> Details:
    return details_on(await stores.open())


async def run(details: Details, events: MemoryEventStore, batch_size: int = 3) -> None:
    await project(events, details.store, details.projection, batch_size=batch_size)


class TestOrderDetails:
    async def test_placed_order_in_full(
        self, details: Details, shop: Shop, events: MemoryEventStore
    ) -> None:
        ada = await shop.customer("Ada Lovelace", "ada@example.com")
        pen = await shop.product("PEN-1", "Fountain pen", "19.99")
        ink = await shop.product("INK-2", "Blue ink", "4.50")
        order_id = await shop.place(ada, pen.line(2), ink.line(3), city="London")
        await run(details, events)

        view = await details.reader.get_order(order_id)
        assert view is not None
        assert (view.order_id, view.customer_id, view.customer_name) == (
            order_id,
            ada,
            "Ada Lovelace",
        )
        assert view.status is OrderStatus.PLACED
        assert [
            (li.sku, li.name, li.unit_price, li.quantity, li.line_total) for li in view.lines
        ] == [
            ("PEN-1", "Fountain pen", Decimal("19.99"), 2, Decimal("39.98")),
            ("INK-2", "Blue ink", Decimal("4.50"), 3, Decimal("13.50")),
        ]
        assert [li.product_id for li in view.lines] == [pen.id, ink.id]
        assert view.total_amount == Decimal("53.48")
        assert str(view.total_amount) == "53.48"
        assert view.item_count == 5
        assert view.shipping_address.city == "London"
        assert (view.tracking_number, view.cancellation_reason) == (None, None)
        assert view.placed_at == view.updated_at == START + timedelta(minutes=4)
        assert view.placed_at.tzinfo is not None
        assert view.version == 1

    async def test_item_added_then_shipped(
        self, details: Details, shop: Shop, events: MemoryEventStore
    ) -> None:
        ada = await shop.customer("Ada", "ada@example.com")
        pen = await shop.product("PEN-1", "Pen", "1.25")
        ink = await shop.product("INK-2", "Ink", "0.10")
        order_id = await shop.place(ada, pen.line(1))
        await shop.add_item(order_id, ink.line(7))
        await shop.ship(order_id, "TRK-42")
        await run(details, events)

        view = await details.reader.get_order(order_id)
        assert view is not None
        assert view.status is OrderStatus.SHIPPED
        assert [li.sku for li in view.lines] == ["PEN-1", "INK-2"]
        assert view.lines[1].line_total == Decimal("0.70")
        assert (view.item_count, view.total_amount) == (8, Decimal("1.95"))
        assert view.tracking_number == "TRK-42"
        assert view.version == 3
        assert view.updated_at == shop.clock
        assert view.placed_at < view.updated_at

    async def test_cancelled(self, details: Details, shop: Shop, events: MemoryEventStore) -> None:
        ada = await shop.customer("Ada", "ada@example.com")
        pen = await shop.product("PEN-1", "Pen", "3.00")
        order_id = await shop.place(ada, pen.line(2))
        await shop.cancel(order_id, pen.line(2), reason="Found it cheaper")
        await run(details, events)

        view = await details.reader.get_order(order_id)
        assert view is not None
        assert view.status is OrderStatus.CANCELLED
        assert view.cancellation_reason == "Found it cheaper"
        assert view.tracking_number is None
        assert view.version == 2

    async def test_unknown_order_is_none(
        self, details: Details, shop: Shop, events: MemoryEventStore
    ) -> None:
        await shop.customer("Ada", "ada@example.com")
        await run(details, events)
        assert await details.reader.get_order(uuid.uuid4()) is None
        page = await details.reader.customer_orders(uuid.uuid4(), None, 1, 10)
        assert (page.items, page.total, page.total_pages) == ([], 0, 0)

    async def test_customer_orders_newest_first_paged_and_filtered(
        self, details: Details, shop: Shop, events: MemoryEventStore
    ) -> None:
        ada = await shop.customer("Ada", "ada@example.com")
        bob = await shop.customer("Bob", "bob@example.com")
        pen = await shop.product("PEN-1", "Pen", "2.00")
        orders = [await shop.place(ada, pen.line(i + 1)) for i in range(5)]
        await shop.place(bob, pen.line(1))
        # Two orders placed in the same microsecond: the order id settles their order.
        same = shop.clock + timedelta(minutes=1)
        twins = [await shop.at(same).place(ada, pen.line(9)) for _ in range(2)]
        await shop.ship(orders[0])
        await shop.cancel(orders[1], pen.line(2))
        await shop.ship(twins[0])
        await run(details, events, batch_size=2)

        newest_first = sorted(twins, key=str, reverse=True) + orders[::-1]
        page1 = await details.reader.customer_orders(ada, None, 1, 3)
        page2 = await details.reader.customer_orders(ada, None, 2, 3)
        page3 = await details.reader.customer_orders(ada, None, 3, 3)
        assert [s.order_id for s in page1.items + page2.items + page3.items] == newest_first
        assert (page1.total, page1.total_pages, page1.page, page1.page_size) == (7, 3, 1, 3)
        assert len(page3.items) == 1
        assert (await details.reader.customer_orders(ada, None, 4, 3)).items == []
        assert page1.items[0].total_amount == Decimal("18.00")
        assert page1.items[0].item_count == 9

        shipped = await details.reader.customer_orders(ada, OrderStatus.SHIPPED, 1, 10)
        assert {s.order_id for s in shipped.items} == {orders[0], twins[0]}
        assert [s.order_id for s in shipped.items] == [twins[0], orders[0]]
        assert shipped.total == 2
        assert all(s.status is OrderStatus.SHIPPED for s in shipped.items)
        cancelled = await details.reader.customer_orders(ada, OrderStatus.CANCELLED, 1, 10)
        assert [s.order_id for s in cancelled.items] == [orders[1]]
        placed = await details.reader.customer_orders(ada, OrderStatus.PLACED, 1, 2)
        assert (placed.total, placed.total_pages) == (4, 2)
        assert [s.order_id for s in placed.items] == [twins[1], orders[4]]
        bobs = await details.reader.customer_orders(bob, None, 1, 10)
        assert bobs.total == 1

    async def test_refuses_pages_before_the_first(self, details: Details) -> None:
        with pytest.raises(ValueError, match="page"):
            await details.reader.customer_orders(uuid.uuid4(), None, 0, 10)
        with pytest.raises(ValueError, match="page_size"):
            await details.reader.customer_orders(uuid.uuid4(), None, 1, 0)

    async def test_replayed_batch_changes_nothing(
        self, details: Details, shop: Shop, events: MemoryEventStore
    ) -> None:
        ada = await shop.customer("Ada", "ada@example.com")
        pen = await shop.product("PEN-1", "Pen", "2.00")
        order_id = await shop.place(ada, pen.line(1))
        await shop.add_item(order_id, pen.line(2))
        await shop.ship(order_id)
        await run(details, events)
        before = await details.reader.get_order(order_id)
        recorded = [r for r in await events.read_all() if details.projection.handles_event(r)]
        for replay in (recorded, recorded[:2], recorded[1:2]):
            async with details.store.transaction(details.projection, None) as tx:
                await details.projection.handle(replay, tx.uow)
        assert await details.reader.get_order(order_id) == before
        page = await details.reader.customer_orders(ada, None, 1, 10)
        assert page.total == 1
        assert (await details.reader.customer_orders(ada, OrderStatus.PLACED, 1, 10)).total == 0

    @pytest.mark.parametrize("batch_size", [1, 10])
    async def test_customer_registered_after_the_order_still_names_it(
        self, details: Details, shop: Shop, events: MemoryEventStore, batch_size: int
    ) -> None:
        # As when a parked registration is retried after the customer's orders: the name
        # arrives in the same batch as the order, or in a later one.
        pen = await shop.product("PEN-1", "Pen", "2.00")
        customer = uuid.uuid4()
        first = await shop.place(customer, pen.line(1))
        await shop.register(customer, "Late Larry", "larry@example.com")
        second = await shop.place(customer, pen.line(2))
        await run(details, events, batch_size=batch_size)
        for order_id in (first, second):
            view = await details.reader.get_order(order_id)
            assert view is not None
            assert view.customer_name == "Late Larry"


@pytest.mark.redis
async def test_sql_and_redis_answer_the_same(
    shop: Shop, events: MemoryEventStore, tmp_path: Any, redis_url: str, redis_prefix: str
) -> None:
    ada = await shop.customer("Ada Lovelace", "ada@example.com")
    bob = await shop.customer("Bob", "bob@example.com")
    pen = await shop.product("PEN-1", "Pen", "2.50")
    ink = await shop.product("INK-1", "Ink", "0.99")
    orders = []
    for i in range(6):
        orders.append(await shop.place(ada if i % 2 else bob, pen.line(i + 1), ink.line(1)))
    twin_time = shop.clock + timedelta(minutes=1)
    orders += [await shop.at(twin_time).place(ada, ink.line(2)) for _ in range(3)]
    await shop.add_item(orders[0], ink.line(4))
    await shop.ship(orders[1], "T-1")
    await shop.cancel(orders[2], pen.line(3), ink.line(1))
    await shop.ship(orders[7], "T-2")

    sql = await open_sql_read_store(f"sqlite:///{tmp_path}/read.db")
    redis = RedisReadStore.from_url(redis_url, prefix=redis_prefix)
    try:
        await project(events, sql, OrderDetailsSqlProjection(), batch_size=4)
        await project(events, redis, OrderDetailsRedisProjection(), batch_size=5)
        sql_reader, redis_reader = SqlOrderDetailsReader(sql), RedisOrderDetailsReader(redis)
        for order_id in [*orders, uuid.uuid4()]:
            assert await sql_reader.get_order(order_id) == await redis_reader.get_order(order_id)
        for customer in (ada, bob, uuid.uuid4()):
            for status in (None, *OrderStatus):
                for page in (1, 2, 3):
                    assert await sql_reader.customer_orders(
                        customer, status, page, 2
                    ) == await redis_reader.customer_orders(customer, status, page, 2)
    finally:
        await sql.close()
        await redis.close()
