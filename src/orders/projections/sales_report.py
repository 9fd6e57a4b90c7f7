"""The sales-report read model (SQL): per UTC day, orders placed, shipped and cancelled,
revenue, and the products sold most.

Tables (``sales_report__<table>_v1``):

- ``days``: day (``YYYY-MM-DD``, UTC) -> orders_placed, orders_shipped, orders_cancelled,
  gross_cents (lines ordered that day: placed orders and added items) and cancelled_cents
  (totals of the orders cancelled that day);
- ``products``: (day, product_id) -> sku, name, quantity, revenue_cents;
- ``orders``: order_id -> the last order stream version counted.

Counters are added to, so every addition is guarded: it applies only while the order's
counted version is older than the event's (``INSERT ... SELECT ... WHERE NOT EXISTS``),
and the event then records its version. A replayed event adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from cqrskit.projection import Projection
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork
from cqrskit.store.base import RecordedEvent
from orders.application.views import ProductSales, SalesDay, SalesReport
from orders.domain.events import OrderCancelled, OrderItemAdded, OrderPlaced, OrderShipped
from orders.domain.values import OrderLine
from orders.projections._common import PARK, cents, day_of, from_cents, id_column

__all__ = ["SalesReportProjection", "SqlSalesReportReader"]

NAME = "sales_report"

_NOT_COUNTED: Final = (
    "WHERE NOT EXISTS (SELECT 1 FROM {orders} WHERE order_id = ? AND version >= ?)"
)

# Parameters of INSERT ... SELECT are cast: PostgreSQL does not type a bare parameter of a
# SELECT list from the target column as it does in VALUES.
_ADD_DAY: Final = (
    "INSERT INTO {days} (day, orders_placed, orders_shipped, orders_cancelled, gross_cents, "
    "cancelled_cents) SELECT CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), "
    f"CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT) {_NOT_COUNTED} "
    "ON CONFLICT (day) DO UPDATE SET "
    "orders_placed = {days}.orders_placed + excluded.orders_placed, "
    "orders_shipped = {days}.orders_shipped + excluded.orders_shipped, "
    "orders_cancelled = {days}.orders_cancelled + excluded.orders_cancelled, "
    "gross_cents = {days}.gross_cents + excluded.gross_cents, "
    "cancelled_cents = {days}.cancelled_cents + excluded.cancelled_cents"
)

_ADD_PRODUCT: Final = (
    "INSERT INTO {products} (day, product_id, sku, name, quantity, revenue_cents) "
    "SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), "
    f"CAST(? AS BIGINT), CAST(? AS BIGINT) {_NOT_COUNTED} "
    "ON CONFLICT (day, product_id) DO UPDATE SET sku = excluded.sku, name = excluded.name, "
    "quantity = {products}.quantity + excluded.quantity, "
    "revenue_cents = {products}.revenue_cents + excluded.revenue_cents"
)

_COUNTED: Final = (
    "INSERT INTO {orders} (order_id, version) VALUES (?, ?) ON CONFLICT (order_id) "
    "DO UPDATE SET version = excluded.version WHERE {orders}.version < excluded.version"
)


class SalesReportProjection(Projection[SqlUnitOfWork]):
    """Builds the ``sales_report`` read model; read it with :class:`SqlSalesReportReader`."""

    name = NAME
    version = 1
    handles = (OrderPlaced, OrderItemAdded, OrderShipped, OrderCancelled)
    tables = ("days", "products", "orders")
    failure_policy = PARK

    async def setup(self, uow: SqlUnitOfWork) -> None:
        """Create the tables (days and (day, product) are their own indexes)."""
        ident = id_column(uow.dialect)
        await uow.execute(
            "CREATE TABLE {days} (day TEXT PRIMARY KEY, orders_placed BIGINT NOT NULL, "
            "orders_shipped BIGINT NOT NULL, orders_cancelled BIGINT NOT NULL, "
            "gross_cents BIGINT NOT NULL, cancelled_cents BIGINT NOT NULL)"
        )
        await uow.execute(
            f"CREATE TABLE {{products}} (day TEXT NOT NULL, product_id {ident} NOT NULL, "
            f"sku {ident} NOT NULL, name TEXT NOT NULL, quantity BIGINT NOT NULL, "
            "revenue_cents BIGINT NOT NULL, PRIMARY KEY (day, product_id))"
        )
        await uow.execute(
            f"CREATE TABLE {{orders}} (order_id {ident} PRIMARY KEY, version BIGINT NOT NULL)"
        )

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        """Add each event to its day, once.

        A batch is three statements, each with a row per event (or line), not three per
        event: on PostgreSQL each statement is a round trip. Every guard sees the orders
        counted before the batch, which decides the same as counting event by event: a
        batch holds each event once, and an order's events in the order of its versions.
        """
        days: list[tuple[Any, ...]] = []
        products: list[tuple[Any, ...]] = []
        counted: list[tuple[str, int]] = []
        for recorded in events:
            event = recorded.event
            day = day_of(recorded).isoformat()
            lines: Sequence[OrderLine] = ()
            match event:
                case OrderPlaced(order_id=order_id, lines=lines):
                    counts = (1, 0, 0, sum(cents(line.total) for line in lines), 0)
                case OrderItemAdded(order_id=order_id, line=line):
                    lines = (line,)
                    counts = (0, 0, 0, cents(line.total), 0)
                case OrderShipped(order_id=order_id):
                    counts = (0, 1, 0, 0, 0)
                case OrderCancelled(order_id=order_id, total=total):
                    counts = (0, 0, 1, 0, cents(total))
                case _:
                    raise TypeError(f"{NAME} does not handle {type(event).__name__}")
            guard = (str(order_id), recorded.version)
            days.append((day, *counts, *guard))
            for line in lines:
                product = (day, str(line.product_id), line.sku, line.name, line.quantity)
                products.append((*product, cents(line.total), *guard))
            counted.append(guard)
        await uow.executemany(_ADD_DAY, days)
        if products:
            await uow.executemany(_ADD_PRODUCT, products)
        await uow.executemany(_COUNTED, counted)


class SqlSalesReportReader:
    """Answers :class:`~orders.application.views.SalesReportReader` from the SQL model."""

    def __init__(self, store: SqlReadStore) -> None:
        self._store = store

    async def sales(self, from_day: date, to_day: date, top: int) -> SalesReport:
        """Days from ``from_day`` to ``to_day`` (inclusive) with any activity, each with its
        ``top`` products by units (ties: more revenue first, then by SKU)."""
        days = await self._store.query(
            NAME,
            "SELECT * FROM {days} WHERE day >= ? AND day <= ? ORDER BY day",
            from_day.isoformat(),
            to_day.isoformat(),
        )
        products: dict[str, list[ProductSales]] = {}
        if days and top > 0:
            rows = await self._store.query(
                NAME,
                "SELECT day, product_id, sku, name, quantity, revenue_cents FROM ("
                "SELECT p.*, ROW_NUMBER() OVER (PARTITION BY day ORDER BY quantity DESC, "
                "revenue_cents DESC, sku, product_id) AS place FROM {products} p "
                "WHERE day >= ? AND day <= ?) ranked WHERE place <= ? ORDER BY day, place",
                from_day.isoformat(),
                to_day.isoformat(),
                top,
            )
            for r in rows:
                products.setdefault(r["day"], []).append(_product_sales(r))
        report_days = [
            SalesDay(
                day=date.fromisoformat(d["day"]),
                orders_placed=int(d["orders_placed"]),
                orders_shipped=int(d["orders_shipped"]),
                orders_cancelled=int(d["orders_cancelled"]),
                gross_revenue=from_cents(d["gross_cents"]),
                net_revenue=from_cents(int(d["gross_cents"]) - int(d["cancelled_cents"])),
                top_products=products.get(d["day"], []),
            )
            for d in days
        ]
        return SalesReport(
            from_day=from_day,
            to_day=to_day,
            days=report_days,
            gross_revenue=sum((d.gross_revenue for d in report_days), Decimal("0.00")),
            net_revenue=sum((d.net_revenue for d in report_days), Decimal("0.00")),
        )


def _product_sales(row: dict[str, Any]) -> ProductSales:
    return ProductSales(
        product_id=UUID(row["product_id"]),
        sku=row["sku"],
        name=row["name"],
        quantity=int(row["quantity"]),
        revenue=from_cents(row["revenue_cents"]),
    )
