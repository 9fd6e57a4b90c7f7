"""Every orders read model passes cqrskit's generic projection check on every store it
supports: the same model whatever the batch size, after a replay, and after a rebuild."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from orders_projection_support import Shop, Stores, redis_dump, sql_dump

from cqrskit.projection import Projection
from cqrskit.projection.testing import check_projection
from cqrskit.readstore import ReadStore, RedisReadStore, SqlReadStore
from cqrskit.store.memory import MemoryEventStore
from orders.application.views import SearchCriteria, SortField, SortOrder
from orders.domain.values import OrderStatus
from orders.projections import (
    CatalogProjection,
    CustomerProjection,
    OrderDetailsRedisProjection,
    OrderDetailsSqlProjection,
    OrderSearchProjection,
    SalesReportProjection,
    SqlOrderSearchReader,
    SqlSalesReportReader,
)

Snapshot = Callable[[ReadStore[Any]], Awaitable[Any]]


async def busy_shop(shop: Shop, seed: int = 7) -> None:
    """A few days of trade: customers, products, orders extended, shipped and cancelled,
    and one customer whose registration comes after their first order."""
    rng = random.Random(seed)
    shop.at(datetime(2024, 6, 1, 20, 0, tzinfo=UTC))
    customers = [await shop.customer(f"Customer {i}", f"c{i}@example.com") for i in range(6)]
    products = [
        await shop.product(f"SKU-{i}", f"Product {i}", f"{rng.randint(100, 5000) / 100:.2f}")
        for i in range(5)
    ]
    await shop.restock(products[0], 50)
    products[1] = await shop.reprice(products[1], "7.77")
    late = Shop(shop.events)
    late_customer = uuid.UUID(int=rng.getrandbits(128), version=4)
    for n in range(24):
        if n % 6 == 5:
            shop.clock += timedelta(hours=5)
        customer = late_customer if n == 3 else rng.choice(customers)
        picked = rng.sample(products, rng.randint(1, 3))
        order = await shop.place(
            customer,
            *(p.line(rng.randint(1, 5)) for p in picked),
            city=rng.choice(["Oslo", "Rome"]),
        )
        if n == 4:
            late.clock = shop.clock
            await late.register(late_customer, "Late Larry", "larry@example.com")
        fate = rng.random()
        if fate < 0.3:
            await shop.add_item(order, products[4].line(1))
        if fate < 0.5:
            await shop.ship(order, f"T-{n}")
        elif fate < 0.7:
            await shop.cancel(order, *(p.line(1) for p in picked), reason="no longer needed")


async def _open(stores: Stores) -> ReadStore[Any]:
    # check_projection closes the stores it opens.
    store: ReadStore[Any] = await stores.open(close=False)
    return store


async def details_sql(store: ReadStore[Any]) -> Any:
    assert isinstance(store, SqlReadStore)
    return await sql_dump(
        store,
        "order_details",
        customers="SELECT * FROM {customers} ORDER BY customer_id",
        orders="SELECT * FROM {orders} ORDER BY order_id",
        lines="SELECT * FROM {lines} ORDER BY order_id, event_version, position",
    )


async def details_redis(store: ReadStore[Any]) -> Any:
    assert isinstance(store, RedisReadStore)
    return await redis_dump(store, "order_details")


async def search(store: ReadStore[Any]) -> Any:
    assert isinstance(store, SqlReadStore)
    reader = SqlOrderSearchReader(store)
    answers = [
        await reader.search(
            SearchCriteria(text=text, sort_by=field, sort_order=order, page_size=100)
        )
        for text in (None, "oslo", "larry", "product 4", "sku-1 customer")
        for field in SortField
        for order in SortOrder
    ]
    answers += [await reader.search(SearchCriteria(status=status)) for status in OrderStatus]
    rows = await sql_dump(
        store,
        "order_search",
        orders="SELECT order_id, customer_id, customer_name, customer_email, status, "
        "item_count, total_cents, city, placed_at, version, terms FROM {orders} "
        "ORDER BY order_id",
        totals="SELECT status, n FROM {totals} ORDER BY status",
        counted="SELECT status, COUNT(*) AS n FROM {orders} GROUP BY status ORDER BY status",
    )
    # The kept counts are the rows' own, whatever the batches, replays and rebuilds.
    assert {r["status"]: int(r["n"]) for r in rows["totals"] if r["n"]} == {
        r["status"]: int(r["n"]) for r in rows["counted"]
    }
    assert all(a.total_is_exact for a in answers)
    return answers, rows


async def sales(store: ReadStore[Any]) -> Any:
    assert isinstance(store, SqlReadStore)
    report = await SqlSalesReportReader(store).sales(date(2024, 1, 1), date(2024, 12, 31), 3)
    rows = await sql_dump(
        store,
        "sales_report",
        days="SELECT * FROM {days} ORDER BY day",
        products="SELECT * FROM {products} ORDER BY day, product_id",
        orders="SELECT * FROM {orders} ORDER BY order_id",
    )
    return report, rows


async def catalog(store: ReadStore[Any]) -> Any:
    assert isinstance(store, SqlReadStore)
    return await sql_dump(store, "catalog", products="SELECT * FROM {products} ORDER BY 1")


async def customers(store: ReadStore[Any]) -> Any:
    assert isinstance(store, SqlReadStore)
    return await sql_dump(store, "customers", customers="SELECT * FROM {customers} ORDER BY 1")


SQL_CASES: dict[str, tuple[type[Projection[Any]], Snapshot]] = {
    "order_details": (OrderDetailsSqlProjection, details_sql),
    "order_search": (OrderSearchProjection, search),
    "sales_report": (SalesReportProjection, sales),
    "catalog": (CatalogProjection, catalog),
    "customers": (CustomerProjection, customers),
}


def _nonempty(snapshot: Any) -> bool:
    """Whether a snapshot holds anything at all (a check over nothing proves nothing)."""
    if isinstance(snapshot, dict):
        return bool(snapshot) and all(_nonempty(v) for v in snapshot.values())
    if isinstance(snapshot, tuple):
        return all(_nonempty(v) for v in snapshot)
    return bool(snapshot)


class TestSqlReadModels:
    @pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
    def kind(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.mark.parametrize("model", list(SQL_CASES))
    async def test_passes_the_projection_check(
        self, model: str, stores: Stores, shop: Shop, events: MemoryEventStore
    ) -> None:
        await busy_shop(shop)
        projection_class, snapshot = SQL_CASES[model]
        final = await check_projection(
            lambda version: projection_class(version=version),
            lambda: _open(stores),
            events,
            snapshot,
        )
        assert _nonempty(final)


class TestRedisReadModels:
    @pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis)])
    def kind(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    async def test_order_details_passes_the_projection_check(
        self, stores: Stores, shop: Shop, events: MemoryEventStore
    ) -> None:
        await busy_shop(shop)
        final = await check_projection(
            lambda version: OrderDetailsRedisProjection(version=version),
            lambda: _open(stores),
            events,
            details_redis,
        )
        assert any(key.startswith("order:") for key in final)
        assert any(key.startswith("customer:") for key in final)
