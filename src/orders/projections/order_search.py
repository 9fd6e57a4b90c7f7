"""The order-search read model (SQL): orders found by words, filtered, sorted, paged.

Tables (``order_search__<table>_v2``; v1 had no ``totals``):

- ``customers``: customer_id, name, email and their search words (``terms``), kept to
  put the customer on each order;
- ``orders``: one row per order with what a hit shows (customer, email, status,
  item_count, total_cents, city, placed_at in microseconds since the epoch, version) and
  ``terms``: the order's search words (customer name and e-mail, product names and SKUs,
  order id, city), space-separated, as cut by :func:`~.search_terms.search_terms`;
  indexed on placed_at, total_cents, item_count, status and customer_id (each with the
  order id, the tie-breaker) so that filtered, sorted pages stay index scans;
- full text: on SQLite the FTS5 table ``fts`` (rowid = ``orders.doc_id``, one ``body``
  column holding the terms); on PostgreSQL the generated column
  ``orders.document tsvector`` (``array_to_tsvector`` of the terms) with a GIN index.
- ``totals``: how many orders there are of each status, kept in the batch's transaction
  from the rows themselves (the batch's orders are taken out by their status before its
  writes and put back after), so that a search filtered by status alone, or not at all,
  has its exact total without counting; other searches count up to
  :data:`~orders.application.views.MAX_COUNTED_TOTAL` matches.

A search's words are each matched as a word prefix and all of them must match; UUIDs in
the text match the order with that id exactly. Nothing typed by a user reaches SQL text:
values are parameters, the sort column comes from a fixed table of the ``SortField``
values, and the words are quoted terms built from letters and digits only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final
from uuid import UUID

from cqrskit.projection import Projection
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork
from cqrskit.store.base import RecordedEvent
from orders.application.views import (
    MAX_COUNTED_TOTAL,
    OrderSearchHit,
    Page,
    SearchCriteria,
    SortField,
    SortOrder,
)
from orders.domain.events import (
    CustomerRegistered,
    OrderCancelled,
    OrderItemAdded,
    OrderPlaced,
    OrderShipped,
)
from orders.domain.values import OrderStatus
from orders.projections._common import (
    PARK,
    cents,
    cents_at_least,
    cents_at_most,
    check_page,
    from_cents,
    from_micros,
    id_column,
    micros,
    occurred_at,
)
from orders.projections.search_terms import (
    fts5_query,
    order_ids_in,
    search_terms,
    terms_text,
    tsquery,
    without_order_ids,
)

__all__ = ["OrderSearchProjection", "SqlOrderSearchReader"]

NAME = "order_search"

_SORT_COLUMNS: Final = {
    SortField.PLACED_AT: "o.placed_at",
    SortField.TOTAL_AMOUNT: "o.total_cents",
    SortField.ITEM_COUNT: "o.item_count",
}
_DIRECTIONS: Final = {SortOrder.ASC: "ASC", SortOrder.DESC: "DESC"}

# SQLite keeps the FTS5 row of an order equal to the order's terms after every change.
_SYNC_FTS: Final = (
    "INSERT OR REPLACE INTO {fts} (rowid, body) SELECT doc_id, terms FROM {orders} "
    "WHERE order_id = ?"
)
_SYNC_CUSTOMER_FTS: Final = (
    "INSERT OR REPLACE INTO {fts} (rowid, body) SELECT doc_id, terms FROM {orders} "
    "WHERE customer_id = ?"
)


# Each status's count, less (before the batch's writes) or plus (after them) the batch's
# orders as they stand then: the counts follow the rows, whatever the events did to them.
_COUNT_ORDERS: Final = (
    "INSERT INTO {{totals}} (status, n) SELECT o.status, {sign}COUNT(*) FROM {{orders}} o "
    "WHERE o.order_id IN ({ids}) GROUP BY o.status "
    "ON CONFLICT (status) DO UPDATE SET n = {{totals}}.n + excluded.n"
)
_IDS: Final = {
    "sqlite": "SELECT value FROM json_each(?)",
    "postgresql": "SELECT unnest(CAST(? AS text[]))",
}


def _order_ids(events: Sequence[RecordedEvent]) -> list[str]:
    """The orders whose status the batch may set (placed, shipped or cancelled)."""
    ids: dict[str, None] = {}
    for recorded in events:
        if isinstance(recorded.event, OrderPlaced | OrderShipped | OrderCancelled):
            ids[str(recorded.event.order_id)] = None
    return list(ids)


class OrderSearchProjection(Projection[SqlUnitOfWork]):
    """Builds the ``order_search`` read model; read it with :class:`SqlOrderSearchReader`."""

    name = NAME
    version = 2
    handles = (CustomerRegistered, OrderPlaced, OrderItemAdded, OrderShipped, OrderCancelled)
    tables = ("customers", "orders", "fts", "totals")
    """``fts`` exists only on SQLite (PostgreSQL keeps its index in ``orders``)."""
    failure_policy = PARK

    async def setup(self, uow: SqlUnitOfWork) -> None:
        """Create the tables, the filter and sort indexes, and the full-text index."""
        ident = id_column(uow.dialect)
        await uow.execute(
            f"CREATE TABLE {{customers}} (customer_id {ident} PRIMARY KEY, "
            "name TEXT NOT NULL, email TEXT NOT NULL, terms TEXT NOT NULL)"
        )
        columns = (
            f"customer_id {ident} NOT NULL, customer_name TEXT, customer_email TEXT, "
            "status TEXT NOT NULL, item_count BIGINT NOT NULL, total_cents BIGINT NOT NULL, "
            "city TEXT NOT NULL, placed_at BIGINT NOT NULL, version BIGINT NOT NULL, "
            "terms TEXT NOT NULL"
        )
        if uow.dialect == "sqlite":
            # An INTEGER PRIMARY KEY is the stable rowid the FTS5 row is tied to.
            await uow.execute(
                "CREATE TABLE {orders} (doc_id INTEGER PRIMARY KEY, "
                f"order_id {ident} NOT NULL UNIQUE, {columns})"
            )
            await uow.execute("CREATE VIRTUAL TABLE {fts} USING fts5(body, tokenize = 'unicode61')")
        else:
            # Lexemes exactly as cut in Python: no parser, no locale, no stemming.
            await uow.execute(
                f"CREATE TABLE {{orders}} (order_id {ident} PRIMARY KEY, {columns}, "
                "document tsvector GENERATED ALWAYS AS "
                "(array_to_tsvector(array_remove(string_to_array(terms, ' '), ''))) STORED)"
            )
            await uow.execute("CREATE INDEX {orders}_document ON {orders} USING gin (document)")
        for suffix, key in (
            ("placed", "placed_at, order_id"),
            ("total", "total_cents, order_id"),
            ("items", "item_count, order_id"),
            ("status", "status, placed_at, order_id"),
            ("customer", "customer_id, placed_at, order_id"),
        ):
            await uow.execute(f"CREATE INDEX {{orders}}_{suffix} ON {{orders}} ({key})")
        await uow.execute("CREATE TABLE {totals} (status TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        # A row for every status from the start: the table then holds the same rows
        # however the events were batched (verify compares them).
        await uow.executemany(
            "INSERT INTO {totals} (status, n) VALUES (?, 0)", [(s.value,) for s in OrderStatus]
        )

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        """Write each event's effect; the customer comes by subquery, without reads."""
        sqlite = uow.dialect == "sqlite"
        registered: list[str] = []
        counted = _order_ids(events)
        if counted:
            await self._count(uow, counted, "-")
        for recorded in events:
            match recorded.event:
                case CustomerRegistered(customer_id=customer_id, name=name, email=email):
                    await uow.execute(
                        "INSERT INTO {customers} (customer_id, name, email, terms) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (customer_id) DO UPDATE SET "
                        "name = excluded.name, email = excluded.email, terms = excluded.terms",
                        str(customer_id),
                        name,
                        email,
                        terms_text(name, email),
                    )
                    registered.append(str(customer_id))
                case OrderPlaced() as placed:
                    await self._placed(uow, recorded, placed)
                    if sqlite:
                        await uow.execute(_SYNC_FTS, str(placed.order_id))
                case OrderItemAdded(order_id=order_id, line=line, total=total):
                    await uow.execute(
                        "UPDATE {orders} SET item_count = item_count + ?, total_cents = ?, "
                        "terms = terms || ' ' || ?, version = ? "
                        "WHERE order_id = ? AND version < ?",
                        line.quantity,
                        cents(total),
                        terms_text(line.name, line.sku),
                        recorded.version,
                        str(order_id),
                        recorded.version,
                    )
                    if sqlite:
                        await uow.execute(_SYNC_FTS, str(order_id))
                case OrderShipped(order_id=order_id) | OrderCancelled(order_id=order_id):
                    status = (
                        OrderStatus.SHIPPED
                        if isinstance(recorded.event, OrderShipped)
                        else OrderStatus.CANCELLED
                    )
                    await uow.execute(
                        "UPDATE {orders} SET status = ?, version = ? "
                        "WHERE order_id = ? AND version < ?",
                        status.value,
                        recorded.version,
                        str(order_id),
                        recorded.version,
                    )
        if registered:
            # Orders projected before their customer (a parked registration retried
            # later) get the customer now: one statement for the whole batch.
            await uow.executemany(
                "UPDATE {orders} SET "
                "customer_name = (SELECT c.name FROM {customers} c "
                "WHERE c.customer_id = {orders}.customer_id), "
                "customer_email = (SELECT c.email FROM {customers} c "
                "WHERE c.customer_id = {orders}.customer_id), "
                "terms = terms || ' ' || (SELECT c.terms FROM {customers} c "
                "WHERE c.customer_id = {orders}.customer_id) "
                "WHERE customer_id = ? AND customer_name IS NULL",
                [(c,) for c in registered],
            )
            if sqlite:
                await uow.executemany(_SYNC_CUSTOMER_FTS, [(c,) for c in registered])
        if counted:
            await self._count(uow, counted, "")

    async def _count(self, uow: SqlUnitOfWork, order_ids: list[str], sign: str) -> None:
        ids = json.dumps(order_ids) if uow.dialect == "sqlite" else order_ids
        await uow.execute(_COUNT_ORDERS.format(sign=sign, ids=_IDS[uow.dialect]), ids)

    async def _placed(
        self, uow: SqlUnitOfWork, recorded: RecordedEvent, placed: OrderPlaced
    ) -> None:
        customer = str(placed.customer_id)
        words = terms_text(
            str(placed.order_id),
            placed.shipping_address.city,
            *(text for line in placed.lines for text in (line.name, line.sku)),
        )
        await uow.execute(
            "INSERT INTO {orders} (order_id, customer_id, customer_name, customer_email, "
            "status, item_count, total_cents, city, placed_at, version, terms) VALUES (?, ?, "
            "(SELECT name FROM {customers} WHERE customer_id = ?), "
            "(SELECT email FROM {customers} WHERE customer_id = ?), ?, ?, ?, ?, ?, ?, "
            "CAST(? AS TEXT) || COALESCE((SELECT ' ' || terms FROM {customers} "
            "WHERE customer_id = ?), '')) ON CONFLICT (order_id) DO NOTHING",
            str(placed.order_id),
            customer,
            customer,
            customer,
            OrderStatus.PLACED.value,
            sum(line.quantity for line in placed.lines),
            cents(placed.total),
            placed.shipping_address.city,
            micros(occurred_at(recorded)),
            recorded.version,
            words,
            customer,
        )


class SqlOrderSearchReader:
    """Answers :class:`~orders.application.views.OrderSearchReader` from the SQL model.

    Text without any word (only punctuation, say) finds nothing; no text (or blanks)
    filters nothing. ``placed_from`` and ``placed_to`` are both inclusive.

    The total is exact for a search filtered by status alone, or not at all (from the
    counts the model keeps); otherwise matches are counted up to ``count_limit``, and a
    search with more says so (``total_is_exact`` false, ``total`` the limit).
    """

    def __init__(self, store: SqlReadStore, *, count_limit: int = MAX_COUNTED_TOTAL) -> None:
        if count_limit < 1:
            raise ValueError("count_limit must be >= 1")
        self._store = store
        self._count_limit = count_limit

    def _text_condition(self, text: str, where: list[str], params: list[Any]) -> bool:
        """Add the text's conditions; false when the text can match nothing."""
        for order_id in order_ids_in(text):
            where.append("o.order_id = ?")
            params.append(str(order_id))
        words = search_terms(without_order_ids(text))
        if not words:
            return bool(order_ids_in(text))
        if self._store.dialect == "sqlite":
            where.append("o.doc_id IN (SELECT rowid FROM {fts} WHERE {fts} MATCH ?)")
            params.append(fts5_query(words))
        else:
            where.append("o.document @@ CAST(CAST(? AS TEXT) AS tsquery)")
            params.append(tsquery(words))
        return True

    async def search(self, criteria: SearchCriteria) -> Page[OrderSearchHit]:
        """One page of the orders matching every criterion, in the requested order."""
        offset = check_page(criteria.page, criteria.page_size)
        where: list[str] = []
        params: list[Any] = []
        text = (criteria.text or "").strip()
        if text and not self._text_condition(text, where, params):
            return Page[OrderSearchHit].of([], 0, criteria.page, criteria.page_size)
        if criteria.status is not None:
            where.append("o.status = ?")
            params.append(criteria.status.value)
        if criteria.min_total is not None:
            where.append("o.total_cents >= ?")
            params.append(cents_at_least(criteria.min_total))
        if criteria.max_total is not None:
            where.append("o.total_cents <= ?")
            params.append(cents_at_most(criteria.max_total))
        if criteria.placed_from is not None:
            where.append("o.placed_at >= ?")
            params.append(micros(criteria.placed_from))
        if criteria.placed_to is not None:
            where.append("o.placed_at <= ?")
            params.append(micros(criteria.placed_to))
        if criteria.customer_id is not None:
            where.append("o.customer_id = ?")
            params.append(str(criteria.customer_id))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        by_status_alone = not text and all(
            value is None
            for value in (
                criteria.min_total,
                criteria.max_total,
                criteria.placed_from,
                criteria.placed_to,
                criteria.customer_id,
            )
        )
        total, exact = await self._total(criteria.status, by_status_alone, clause, params)
        direction = _DIRECTIONS[criteria.sort_order]
        order_by = f"{_SORT_COLUMNS[criteria.sort_by]} {direction}, o.order_id {direction}"
        rows = await self._store.query(
            NAME,
            "SELECT o.order_id, o.customer_id, o.customer_name, o.customer_email, o.status, "
            "o.item_count, o.total_cents, o.city, o.placed_at "
            f"FROM {{orders}} o{clause} ORDER BY {order_by} LIMIT ? OFFSET ?",
            *params,
            criteria.page_size,
            offset,
        )
        hits = [
            OrderSearchHit(
                order_id=UUID(r["order_id"]),
                customer_id=UUID(r["customer_id"]),
                customer_name=r["customer_name"] or "",
                customer_email=r["customer_email"] or "",
                status=OrderStatus(r["status"]),
                item_count=int(r["item_count"]),
                total_amount=from_cents(r["total_cents"]),
                city=r["city"],
                placed_at=from_micros(r["placed_at"]),
            )
            for r in rows
        ]
        return Page[OrderSearchHit].of(hits, total, criteria.page, criteria.page_size, exact=exact)

    async def _total(
        self, status: OrderStatus | None, by_status_alone: bool, clause: str, params: list[Any]
    ) -> tuple[int, bool]:
        """How many orders match, and whether that is exact."""
        # A live version built before v2 has no totals (while v2 is rebuilt beside it).
        if by_status_alone and "totals" in await self._store.live_tables(NAME):
            if status is None:
                row = await self._store.fetchone(NAME, "SELECT SUM(n) AS n FROM {totals}")
            else:
                row = await self._store.fetchone(
                    NAME, "SELECT n FROM {totals} WHERE status = ?", status.value
                )
            return (int(row["n"]) if row and row["n"] is not None else 0), True
        row = await self._store.fetchone(
            NAME,
            f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM {{orders}} o{clause} LIMIT ?) AS matches",
            *params,
            self._count_limit + 1,
        )
        counted = int(row["n"]) if row else 0
        if counted > self._count_limit:
            return self._count_limit, False
        return counted, True
