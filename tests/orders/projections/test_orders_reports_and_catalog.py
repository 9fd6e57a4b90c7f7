"""The sales report, catalog and customers read models, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from orders_projection_support import Shop, Stores, project

from cqrskit.readstore import SqlReadStore
from cqrskit.store.memory import MemoryEventStore
from orders.projections import (
    CatalogProjection,
    CustomerProjection,
    SalesReportProjection,
    SqlCatalogReader,
    SqlCustomerReader,
    SqlSalesReportReader,
)

DAY1 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
DAY2 = datetime(2024, 5, 2, 23, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(stores: Stores) -> SqlReadStore:
    store: SqlReadStore = await stores.open()
    return store


class TestSalesReport:
    async def test_two_days(
        self, shop: Shop, events: MemoryEventStore, store: SqlReadStore
    ) -> None:
        ada = await shop.customer("Ada", "ada@example.com")
        pen = await shop.product("PEN", "Pen", "10.00")
        ink = await shop.product("INK", "Ink", "2.50")
        pad = await shop.product("PAD", "Pad", "5.00")
        cap = await shop.product("CAP", "Cap", "2.50")

        shop.at(DAY1)
        first = await shop.place(ada, pen.line(1), ink.line(4))  # 20.00
        second = await shop.place(ada, pad.line(2))  # 10.00
        await shop.add_item(second, cap.line(4))  # +10.00 -> 20.00
        await shop.ship(first)
        shop.at(DAY2)
        third = await shop.place(ada, ink.line(2), cap.line(2))  # 10.00
        await shop.cancel(second, pad.line(2), cap.line(4))  # 20.00 no longer counts
        await shop.ship(third)
        # Just after midnight UTC (still May 2 in New York): a day of its own.
        await shop.at(datetime(2024, 5, 3, 0, 0, 1, tzinfo=UTC)).place(ada, pen.line(1))
        await project(events, store, SalesReportProjection(), batch_size=3)

        reader = SqlSalesReportReader(store)
        report = await reader.sales(date(2024, 5, 1), date(2024, 5, 2), top=2)
        day1, day2 = report.days
        assert (day1.day, day1.orders_placed, day1.orders_shipped, day1.orders_cancelled) == (
            date(2024, 5, 1),
            2,
            1,
            0,
        )
        assert (day1.gross_revenue, day1.net_revenue) == (Decimal("40.00"), Decimal("40.00"))
        # Units: ink 4, cap 4 (ink has more revenue? both 10.00: then by SKU), pad 2, pen 1.
        assert [(p.sku, p.quantity, p.revenue) for p in day1.top_products] == [
            ("CAP", 4, Decimal("10.00")),
            ("INK", 4, Decimal("10.00")),
        ]
        assert day1.top_products[0].product_id == cap.id
        assert day1.top_products[0].name == "Cap"
        assert (day2.day, day2.orders_placed, day2.orders_shipped, day2.orders_cancelled) == (
            date(2024, 5, 2),
            1,
            1,
            1,
        )
        assert (day2.gross_revenue, day2.net_revenue) == (Decimal("10.00"), Decimal("-10.00"))
        assert [(p.sku, p.quantity) for p in day2.top_products] == [("CAP", 2), ("INK", 2)]
        assert (report.gross_revenue, report.net_revenue) == (Decimal("50.00"), Decimal("30.00"))
        assert str(report.gross_revenue) == "50.00"

        everything = await reader.sales(date(2024, 1, 1), date(2024, 12, 31), top=10)
        assert [d.day for d in everything.days] == [date(2024, 5, d) for d in (1, 2, 3)]
        assert [p.sku for p in everything.days[0].top_products] == ["CAP", "INK", "PAD", "PEN"]
        assert (await reader.sales(date(2024, 5, 2), date(2024, 5, 2), top=0)).days[
            0
        ].top_products == []
        empty = await reader.sales(date(2023, 1, 1), date(2023, 1, 31), top=3)
        assert empty.days == []
        assert (empty.gross_revenue, empty.net_revenue) == (Decimal(0), Decimal(0))

    async def test_top_products_prefer_revenue_on_equal_units(
        self, shop: Shop, events: MemoryEventStore, store: SqlReadStore
    ) -> None:
        ada = await shop.customer("Ada", "ada@example.com")
        cheap = await shop.product("A-CHEAP", "Cheap", "1.00")
        dear = await shop.product("Z-DEAR", "Dear", "9.00")
        shop.at(DAY1)
        await shop.place(ada, cheap.line(3), dear.line(3))
        await project(events, store, SalesReportProjection())
        report = await SqlSalesReportReader(store).sales(DAY1.date(), DAY1.date(), top=1)
        assert [p.sku for p in report.days[0].top_products] == ["Z-DEAR"]

    async def test_replayed_events_are_not_counted_twice(
        self, shop: Shop, events: MemoryEventStore, store: SqlReadStore
    ) -> None:
        ada = await shop.customer("Ada", "ada@example.com")
        pen = await shop.product("PEN", "Pen", "10.00")
        shop.at(DAY1)
        order = await shop.place(ada, pen.line(2))
        await shop.add_item(order, pen.line(1))
        await shop.cancel(order)
        projection = SalesReportProjection()
        await project(events, store, projection)
        reader = SqlSalesReportReader(store)
        before = await reader.sales(DAY1.date(), DAY1.date(), top=5)
        handled = [r for r in await events.read_all() if projection.handles_event(r)]
        for replay in (handled, handled[1:], handled[:1]):
            async with store.transaction(projection, None) as tx:
                await projection.handle(replay, tx.uow)
        assert await reader.sales(DAY1.date(), DAY1.date(), top=5) == before
        assert before.days[0].orders_placed == 1
        assert before.days[0].top_products[0].quantity == 3


class TestCatalog:
    async def test_stock_accounting_and_price(
        self, shop: Shop, events: MemoryEventStore, store: SqlReadStore
    ) -> None:
        ada = await shop.customer("Ada", "ada@example.com")
        pen = await shop.product("PEN-1", "Pen", "10.00", stock=10)
        other = await shop.product("INK-1", "Ink", "1.00", stock=5)
        await shop.restock(pen, 5)  # 15
        pen = await shop.reprice(pen, "12.50")
        order = await shop.place(ada, pen.line(4), other.line(1))  # 11
        await shop.place(ada, pen.line(3))  # 8
        await shop.cancel(order, pen.line(4), other.line(1))  # 12
        await project(events, store, CatalogProjection(), batch_size=2)

        reader = SqlCatalogReader(store)
        view = await reader.get_product(pen.id)
        assert view is not None
        assert (view.product_id, view.sku, view.name) == (pen.id, "PEN-1", "Pen")
        assert view.price == Decimal("12.50")
        assert str(view.price) == "12.50"
        assert view.available_stock == 10 + 5 - 4 - 3 + 4
        # Added, restocked, repriced, reserved twice, released.
        assert view.version == 6
        ink = await reader.get_product(other.id)
        assert ink is not None
        assert (ink.available_stock, ink.version) == (5, 3)
        assert await reader.get_product(uuid.uuid4()) is None


class TestCustomers:
    async def test_profile(self, shop: Shop, events: MemoryEventStore, store: SqlReadStore) -> None:
        shop.at(DAY2)
        ada = await shop.customer("Ada Lovelace", "Ada@Example.com")
        bob = await shop.customer("Bob", "bob@example.com")
        await project(events, store, CustomerProjection(), batch_size=1)

        reader = SqlCustomerReader(store)
        view = await reader.get_customer(ada)
        assert view is not None
        assert (view.customer_id, view.name, view.email) == (ada, "Ada Lovelace", "Ada@Example.com")
        assert view.registered_at == DAY2
        other = await reader.get_customer(bob)
        assert other is not None
        assert other.registered_at == DAY2 + timedelta(minutes=1)
        assert await reader.get_customer(uuid.uuid4()) is None
