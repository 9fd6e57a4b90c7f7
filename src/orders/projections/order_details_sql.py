"""The order-details read model in SQL (SQLite or PostgreSQL): one order in full, and
each customer's orders newest first.

Tables (``order_details__<table>_v1``):

- ``customers``: customer_id, name: kept only to put the customer's name on orders;
- ``orders``: one row per order: customer, status, item_count, total_cents, the address,
  tracking number, cancellation reason, placed_at / updated_at (microseconds since the
  epoch, UTC) and version (the order stream's version);
- ``lines``: one row per order line, keyed by (order_id, event_version, position), the
  order stream version of the event that added it and its place in that event.

Every write is guarded so that a replayed event changes nothing: inserts ``DO NOTHING``
on conflict, updates apply only to an order whose stored version is older than the event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from cqrskit.projection import Projection
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork
from cqrskit.store.base import RecordedEvent
from orders.application.views import LineView, OrderSummary, OrderView, Page
from orders.domain.events import (
    CustomerRegistered,
    OrderCancelled,
    OrderItemAdded,
    OrderPlaced,
    OrderShipped,
)
from orders.domain.values import Address, OrderLine, OrderStatus
from orders.projections._common import (
    PARK,
    cents,
    check_page,
    from_cents,
    from_micros,
    id_column,
    micros,
    occurred_at,
)

__all__ = ["OrderDetailsSqlProjection", "SqlOrderDetailsReader"]

NAME = "order_details"

_INSERT_LINE = (
    "INSERT INTO {lines} (order_id, event_version, position, product_id, sku, name, "
    "unit_price_cents, quantity) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (order_id, event_version, position) DO NOTHING"
)


def _line_row(order_id: str, version: int, position: int, line: OrderLine) -> tuple[Any, ...]:
    return (
        order_id,
        version,
        position,
        str(line.product_id),
        line.sku,
        line.name,
        cents(line.unit_price),
        line.quantity,
    )


class OrderDetailsSqlProjection(Projection[SqlUnitOfWork]):
    """Builds the ``order_details`` read model in SQL; read it with
    :class:`SqlOrderDetailsReader`."""

    name = NAME
    version = 1
    handles = (CustomerRegistered, OrderPlaced, OrderItemAdded, OrderShipped, OrderCancelled)
    tables = ("customers", "orders", "lines")
    failure_policy = PARK

    async def setup(self, uow: SqlUnitOfWork) -> None:
        """Create the tables and the index behind a customer's list (and its filter)."""
        ident = id_column(uow.dialect)
        await uow.execute(
            f"CREATE TABLE {{customers}} (customer_id {ident} PRIMARY KEY, name TEXT NOT NULL)"
        )
        await uow.execute(
            f"CREATE TABLE {{orders}} (order_id {ident} PRIMARY KEY, "
            f"customer_id {ident} NOT NULL, customer_name TEXT, status TEXT NOT NULL, "
            "item_count BIGINT NOT NULL, total_cents BIGINT NOT NULL, "
            "street TEXT NOT NULL, city TEXT NOT NULL, postal_code TEXT NOT NULL, "
            "country TEXT NOT NULL, tracking_number TEXT, cancellation_reason TEXT, "
            "placed_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, version BIGINT NOT NULL)"
        )
        await uow.execute(
            "CREATE INDEX {orders}_by_customer ON {orders} (customer_id, placed_at, order_id)"
        )
        await uow.execute(
            "CREATE INDEX {orders}_by_customer_status "
            "ON {orders} (customer_id, status, placed_at, order_id)"
        )
        await uow.execute(
            f"CREATE TABLE {{lines}} (order_id {ident} NOT NULL, event_version BIGINT NOT NULL, "
            "position INTEGER NOT NULL, product_id TEXT NOT NULL, sku TEXT NOT NULL, "
            "name TEXT NOT NULL, unit_price_cents BIGINT NOT NULL, quantity BIGINT NOT NULL, "
            "PRIMARY KEY (order_id, event_version, position))"
        )

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        """Write each event's effect; no reads (the customer's name comes by subquery)."""
        registered: list[tuple[str, str]] = []
        for recorded in events:
            at = micros(occurred_at(recorded))
            match recorded.event:
                case CustomerRegistered(customer_id=customer_id, name=name):
                    await uow.execute(
                        "INSERT INTO {customers} (customer_id, name) VALUES (?, ?) "
                        "ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name",
                        str(customer_id),
                        name,
                    )
                    registered.append((name, str(customer_id)))
                case OrderPlaced() as placed:
                    await self._placed(uow, recorded, placed, at)
                case OrderItemAdded(order_id=order_id, line=line, total=total):
                    await uow.execute(
                        _INSERT_LINE, *_line_row(str(order_id), recorded.version, 0, line)
                    )
                    await uow.execute(
                        "UPDATE {orders} SET item_count = item_count + ?, total_cents = ?, "
                        "updated_at = ?, version = ? WHERE order_id = ? AND version < ?",
                        line.quantity,
                        cents(total),
                        at,
                        recorded.version,
                        str(order_id),
                        recorded.version,
                    )
                case OrderShipped(order_id=order_id, tracking_number=tracking):
                    await uow.execute(
                        "UPDATE {orders} SET status = ?, tracking_number = ?, updated_at = ?, "
                        "version = ? WHERE order_id = ? AND version < ?",
                        OrderStatus.SHIPPED.value,
                        tracking,
                        at,
                        recorded.version,
                        str(order_id),
                        recorded.version,
                    )
                case OrderCancelled(order_id=order_id, reason=reason):
                    await uow.execute(
                        "UPDATE {orders} SET status = ?, cancellation_reason = ?, "
                        "updated_at = ?, version = ? WHERE order_id = ? AND version < ?",
                        OrderStatus.CANCELLED.value,
                        reason,
                        at,
                        recorded.version,
                        str(order_id),
                        recorded.version,
                    )
        if registered:
            # Orders projected before their customer (a parked registration retried
            # later) get the name now; one statement for the whole batch.
            await uow.executemany(
                "UPDATE {orders} SET customer_name = ? "
                "WHERE customer_id = ? AND customer_name IS NULL",
                registered,
            )

    async def _placed(
        self, uow: SqlUnitOfWork, recorded: RecordedEvent, placed: OrderPlaced, at: int
    ) -> None:
        order_id, address = str(placed.order_id), placed.shipping_address
        await uow.execute(
            "INSERT INTO {orders} (order_id, customer_id, customer_name, status, item_count, "
            "total_cents, street, city, postal_code, country, placed_at, updated_at, version) "
            "VALUES (?, ?, (SELECT name FROM {customers} WHERE customer_id = ?), ?, ?, ?, "
            "?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
            order_id,
            str(placed.customer_id),
            str(placed.customer_id),
            OrderStatus.PLACED.value,
            sum(line.quantity for line in placed.lines),
            cents(placed.total),
            address.street,
            address.city,
            address.postal_code,
            address.country,
            at,
            at,
            recorded.version,
        )
        await uow.executemany(
            _INSERT_LINE,
            [
                _line_row(order_id, recorded.version, position, line)
                for position, line in enumerate(placed.lines)
            ],
        )


def _line_view(row: dict[str, Any]) -> LineView:
    unit_price = from_cents(row["unit_price_cents"])
    quantity = int(row["quantity"])
    return LineView(
        product_id=UUID(row["product_id"]),
        sku=row["sku"],
        name=row["name"],
        unit_price=unit_price,
        quantity=quantity,
        line_total=unit_price * quantity,
    )


class SqlOrderDetailsReader:
    """Answers :class:`~orders.application.views.OrderDetailsReader` from the SQL model."""

    def __init__(self, store: SqlReadStore) -> None:
        self._store = store

    async def get_order(self, order_id: UUID) -> OrderView | None:
        """The order with its lines, or ``None`` if there is no such order (yet)."""
        # One query (order columns repeated on every line) reads one consistent snapshot.
        rows = await self._store.query(
            NAME,
            "SELECT o.order_id, o.customer_id, o.customer_name, o.status, o.item_count, "
            "o.total_cents, o.street, o.city, o.postal_code, o.country, o.tracking_number, "
            "o.cancellation_reason, o.placed_at, o.updated_at, o.version, l.product_id, "
            "l.sku, l.name, l.unit_price_cents, l.quantity FROM {orders} o "
            "LEFT JOIN {lines} l ON l.order_id = o.order_id WHERE o.order_id = ? "
            "ORDER BY l.event_version, l.position",
            str(order_id),
        )
        if not rows:
            return None
        head = rows[0]
        return OrderView(
            order_id=UUID(head["order_id"]),
            customer_id=UUID(head["customer_id"]),
            customer_name=head["customer_name"] or "",
            status=OrderStatus(head["status"]),
            lines=[_line_view(r) for r in rows if r["product_id"] is not None],
            item_count=int(head["item_count"]),
            total_amount=from_cents(head["total_cents"]),
            shipping_address=Address(
                street=head["street"],
                city=head["city"],
                postal_code=head["postal_code"],
                country=head["country"],
            ),
            tracking_number=head["tracking_number"],
            cancellation_reason=head["cancellation_reason"],
            placed_at=from_micros(head["placed_at"]),
            updated_at=from_micros(head["updated_at"]),
            version=int(head["version"]),
        )

    async def customer_orders(
        self, customer_id: UUID, status: OrderStatus | None, page: int, page_size: int
    ) -> Page[OrderSummary]:
        """A customer's orders, newest first (ties by order id), optionally of one status."""
        offset = check_page(page, page_size)
        where = "customer_id = ?"
        params: list[Any] = [str(customer_id)]
        if status is not None:
            where += " AND status = ?"
            params.append(status.value)
        counted = await self._store.fetchone(
            NAME, f"SELECT COUNT(*) AS n FROM {{orders}} WHERE {where}", *params
        )
        total = int(counted["n"]) if counted else 0
        rows = await self._store.query(
            NAME,
            "SELECT order_id, status, item_count, total_cents, placed_at FROM {orders} "
            f"WHERE {where} ORDER BY placed_at DESC, order_id DESC LIMIT ? OFFSET ?",
            *params,
            page_size,
            offset,
        )
        items = [
            OrderSummary(
                order_id=UUID(r["order_id"]),
                status=OrderStatus(r["status"]),
                item_count=int(r["item_count"]),
                total_amount=from_cents(r["total_cents"]),
                placed_at=from_micros(r["placed_at"]),
            )
            for r in rows
        ]
        return Page[OrderSummary].of(items, total, page, page_size)
