"""eventsourcing's side of the projection benchmark: the same order summary, the same events.

    .venv/bin/python bench/peer_projection.py load sqlite|postgresql COUNT [--postgres-url URL]
    .venv/bin/python bench/peer_projection.py rebuild sqlite|postgresql COUNT [--postgres-url URL]

``bench/bench_projections.py`` runs both as child processes (``load`` once per size, then
``rebuild`` in a fresh process for its own peak RSS); each prints one JSON line. Needs the
``bench`` extra.

- **The events** are the benchmark's orders (``_rebuild_data.order_rows``: placed, 8
  lines, shipped), turned into eventsourcing domain events (the order stream's name becomes
  a UUID, the payload is the same) by the peer's mapper and stored by the peer's own
  recorder (``insert_events``) in its SQLite file or PostgreSQL schema; made once, then
  reused.
- **The read model** is the same two tables with the same UPSERTs as cqrskit's
  ``OrderSummary``, in a view that is the peer's ``SQLiteTrackingRecorder`` /
  ``PostgresTrackingRecorder`` (each event's rows and its tracking record in one
  transaction, which is how the peer keeps a projection's effects exactly once).
- **The runner**: on PostgreSQL, the peer's ``ProjectionRunner`` (its LISTEN/NOTIFY
  subscription pulls 500 notifications at a time in a thread of its own and queues up to
  ten such pages). Its SQLite recorder has no subscriptions (``subscribe`` raises
  ``NotImplementedError`` in 9.5.6), so on SQLite the same ``Projection`` is fed by what
  that subscription does, in one thread: the recorder's ``select_notifications`` 500 at a
  time, the application's mapper, and ``process_event`` with a ``Tracking`` per event.
- **The process** imports the peer, psycopg and ``_rebuild_data`` / ``_peer``, never cqrskit
  or its libraries, so its peak RSS is the peer's own.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.sql import SQL, Identifier

from _peer import postgres_env
from _rebuild_data import (
    CREATE_CUSTOMERS,
    CREATE_ORDERS,
    CUSTOMER_UPSERT,
    DATA,
    EVENTS_PER_ORDER,
    LINE_ADDED,
    MODEL_TOTALS,
    ORDER_UPSERT,
    PLACED,
    SHIPPED,
    TOTALS,
    order_rows,
    peak_rss_mb,
)

try:
    from eventsourcing.application import Application
    from eventsourcing.dispatch import singledispatchmethod
    from eventsourcing.domain import DomainEvent
    from eventsourcing.persistence import InfrastructureFactory, Tracking, TrackingRecorder
    from eventsourcing.postgres import PostgresTrackingRecorder
    from eventsourcing.projection import Projection, ProjectionRunner
    from eventsourcing.sqlite import SQLiteRecorder, SQLiteTrackingRecorder
    from eventsourcing.utils import Environment
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise SystemExit(
        'bench/peer_projection.py needs the bench extra: pip install -e ".[dev,bench]"'
    ) from exc

LOAD_BATCH = 10_000
ORDERS = uuid.UUID("5f0c5d3e-6a43-4c3b-9a4e-0d2f3c6b7a10")
"""Namespace of the order streams' UUIDs (the peer's originator ids are UUIDs)."""


class OrderPlaced(DomainEvent):
    customer: str


class OrderLineAdded(DomainEvent):
    sku: str
    quantity: int
    price_cents: int


class OrderShipped(DomainEvent):
    customer: str
    total_cents: int


PEER_EVENTS: dict[str, type[DomainEvent]] = {
    PLACED: OrderPlaced,
    LINE_ADDED: OrderLineAdded,
    SHIPPED: OrderShipped,
}


class Orders(Application):
    """The peer's application: its recorder holds the events, its mapper decodes them."""

    name = "Orders"


# -- the view: the peer's tracking recorder with the read model's tables -------------------

OrderRow = tuple[str, str | None, str | None, int, int, int]
CustomerRow = tuple[str, int, int]


class SummaryView(TrackingRecorder):
    """What the projection writes through: one event's rows and its tracking, atomically."""

    def record(self, order: OrderRow, customer: CustomerRow | None, tracking: Tracking) -> None:
        raise NotImplementedError

    def totals(self) -> dict[str, int]:
        """The view's :data:`TOTALS`, to check both sides built the same thing."""
        raise NotImplementedError


class SqliteSummaryView(SQLiteTrackingRecorder, SummaryView):
    names = {"orders": "orders", "customers": "customers", "p": "?"}

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            CREATE_ORDERS.format(**self.names),
            CREATE_CUSTOMERS.format(**self.names),
        ]

    def record(self, order: OrderRow, customer: CustomerRow | None, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(ORDER_UPSERT.format(**self.names), order)
            if customer is not None:
                c.execute(CUSTOMER_UPSERT.format(**self.names), customer)
            self._insert_tracking(c, tracking)

    def totals(self) -> dict[str, int]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(MODEL_TOTALS.format(**self.names))
            row = c.fetchone()
        return {name: int(row[name]) for name in TOTALS}


class PostgresSummaryView(PostgresTrackingRecorder, SummaryView):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = self.datastore.schema
        self.names = {
            "orders": f'"{schema}".orders',
            "customers": f'"{schema}".customers',
            "p": "%s",
        }
        for statement in (CREATE_ORDERS, CREATE_CUSTOMERS):
            self.sql_create_statements.append(SQL(statement.format(**self.names)))
        self.order_upsert = ORDER_UPSERT.format(**self.names)
        self.customer_upsert = CUSTOMER_UPSERT.format(**self.names)

    def record(self, order: OrderRow, customer: CustomerRow | None, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.order_upsert, order, prepare=True)
            if customer is not None:
                curs.execute(self.customer_upsert, customer, prepare=True)
            self._insert_tracking(curs, tracking)

    def totals(self) -> dict[str, int]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(MODEL_TOTALS.format(**self.names))
            row = curs.fetchone()
        assert row is not None
        return {name: int(row[name]) for name in TOTALS}

    def synchronous_commit(self) -> str:
        """The setting the view's connections commit with."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SHOW synchronous_commit")
            row = curs.fetchone()
        assert row is not None
        return str(row["synchronous_commit"])


class OrderSummary(Projection[SummaryView]):
    """The same read model as cqrskit's ``OrderSummary``, one event at a time."""

    name = "OrderSummary"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, domain_event: OrderPlaced, tracking: Tracking) -> None:
        order = str(domain_event.originator_id)
        version = domain_event.originator_version
        row = (order, domain_event.customer, "placed", 0, 0, version)
        self.view.record(row, (domain_event.customer, 1, 0), tracking)

    @process_event.register
    def _(self, domain_event: OrderLineAdded, tracking: Tracking) -> None:
        total = domain_event.quantity * domain_event.price_cents
        row = (
            str(domain_event.originator_id),
            None,
            None,
            1,
            total,
            domain_event.originator_version,
        )
        self.view.record(row, None, tracking)

    @process_event.register
    def _(self, domain_event: OrderShipped, tracking: Tracking) -> None:
        order = str(domain_event.originator_id)
        row = (order, None, "shipped", 0, 0, domain_event.originator_version)
        customer = (domain_event.customer, 0, domain_event.total_cents)
        self.view.record(row, customer, tracking)


# -- where the events live ----------------------------------------------------------------


def environment(database: str, count: int, postgres_url: str, read: str | None) -> dict[str, str]:
    """The peer's configuration: the events of ``count`` in their file or schema, and with
    ``read`` the view in a file or schema of its own (the projection's prefixed settings)."""
    if database == "sqlite":
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(DATA / f"peer-events-{count}.db"),
            "SQLITE_LOCK_TIMEOUT": "60",
        }
        if read:
            env["ORDERSUMMARY_SQLITE_DBNAME"] = str(DATA / f"peer-{read}.db")
        return env
    env = postgres_env(postgres_url, f"bench_peer_proj_{count}")
    if read:
        env["ORDERSUMMARY_POSTGRES_SCHEMA"] = read
    return env


def create_schema(postgres_url: str, schema: str) -> None:
    """The peer makes its tables, not the schema they go in."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


def _domain_events(count: int) -> Iterator[DomainEvent]:
    """``bench_projections``'s events, as the peer's domain events."""
    now = datetime.now(UTC)
    ids: dict[str, uuid.UUID] = {}
    for offset in range(0, count, 100_000):
        for stream, version, event_type, data, _metadata in order_rows(
            min(100_000, count - offset), offset
        ):
            originator = ids.get(stream)
            if originator is None:
                ids.clear()  # an order's events are consecutive
                originator = ids[stream] = uuid.uuid5(ORDERS, stream)
            yield PEER_EVENTS[event_type](
                originator_id=originator,
                originator_version=version,
                timestamp=now,
                **orjson.loads(data),
            )


def stored_events(app: Orders) -> int:
    """How many events the peer's recorder holds (its notification ids may have gaps)."""
    recorder: Any = app.recorder
    with recorder.datastore.transaction(commit=False) as cursor:
        table = recorder.events_table_name
        if isinstance(recorder, SQLiteRecorder):
            cursor.execute(f"SELECT count(*) AS n FROM {table}")
        else:
            cursor.execute(
                SQL("SELECT count(*) AS n FROM {}.{}").format(
                    Identifier(recorder.datastore.schema), Identifier(table)
                )
            )
        return int(cursor.fetchone()["n"])


def load(database: str, count: int, postgres_url: str) -> dict[str, Any]:
    """Store ``count`` events with the peer's recorder, unless they are there already."""
    if count % EVENTS_PER_ORDER:
        raise SystemExit(f"COUNT must be whole orders, a multiple of {EVENTS_PER_ORDER}")
    DATA.mkdir(parents=True, exist_ok=True)
    env = environment(database, count, postgres_url, None)
    schema = env.get("POSTGRES_SCHEMA", "")
    if database == "postgresql":
        create_schema(postgres_url, schema)
    app = Orders(env=env)
    stored = stored_events(app)
    if stored == count:
        app.close()
        return {"loaded": 0, "events": count}
    if stored:  # an interrupted load: start again
        app.close()
        if database == "postgresql":
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            create_schema(postgres_url, schema)
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(env["SQLITE_DBNAME"] + suffix).unlink(missing_ok=True)
        app = Orders(env=env)
    try:
        started = time.perf_counter()
        batch = []
        for domain_event in _domain_events(count):
            batch.append(app.mapper.to_stored_event(domain_event))
            if len(batch) == LOAD_BATCH:
                app.recorder.insert_events(batch)
                batch = []
        if batch:
            app.recorder.insert_events(batch)
        return {"loaded": count, "seconds": round(time.perf_counter() - started, 1)}
    finally:
        app.close()


# -- the rebuild --------------------------------------------------------------------------


def rebuild(database: str, count: int, postgres_url: str, read: str) -> dict[str, Any]:
    """Build the view from scratch over ``count`` stored events; in a process of its own.

    The time runs from before the peer's runner (or loop) is made, since it starts
    processing as it is made, until the view's tracking reaches the last event (checked
    every 10 ms: the runner's own ``wait`` backs off to 0.8 s between checks).
    """
    env = environment(database, count, postgres_url, read)
    if database == "postgresql":
        create_schema(postgres_url, read)
        # cqrskit's PostgreSQL read store commits with synchronous_commit off (a read model
        # is rebuilt from the events); libpq gives the peer's connections the same.
        options = os.environ.get("PGOPTIONS", "")
        os.environ["PGOPTIONS"] = f"{options} -c synchronous_commit=off".strip()
    if database == "sqlite":
        seconds, totals, stored = _pull_and_process(env)
    else:
        started = time.perf_counter()
        with ProjectionRunner(
            application_class=Orders,
            projection_class=OrderSummary,
            view_class=PostgresSummaryView,
            env=env,
        ) as runner:
            last = runner.app.recorder.max_notification_id() or 0
            while (runner.view.max_tracking_id(Orders.name) or 0) < last:
                runner.run_forever(timeout=0.01)  # raises what stopped the runner, if it did
                if runner.is_interrupted.is_set():
                    raise SystemExit("the peer's runner stopped before the end")
            seconds = time.perf_counter() - started
            totals = runner.view.totals()
            stored = stored_events(runner.app)
            if (setting := runner.view.synchronous_commit()) != "off":
                raise SystemExit(f"the peer's view commits with synchronous_commit={setting}")
    if stored != count:
        raise SystemExit(f"the peer's store holds {stored} events, not {count}: load it first")
    return {
        "events": stored,
        "seconds": round(seconds, 3),
        "events_per_second": round(stored / seconds),
        "peak_rss_mb": peak_rss_mb(),
        **totals,
    }


def _pull_and_process(env: dict[str, str]) -> tuple[float, dict[str, int], int]:
    """What the peer's subscription does, in one thread: its SQLite recorder has none.

    Unlike the subscription, this reads the next 500 notifications only after processing
    the last ones (no thread hands them over, no queue holds up to ten such pages).
    """
    started = time.perf_counter()
    app = Orders(env=env)
    view = (
        InfrastructureFactory[SqliteSummaryView]
        .construct(env=Environment(OrderSummary.name, {**os.environ, **env}))
        .tracking_recorder(SqliteSummaryView)
    )
    projection = OrderSummary(view=view)
    last = view.max_tracking_id(app.name) or 0
    try:
        while True:
            notifications = app.recorder.select_notifications(
                start=last, limit=500, inclusive_of_start=False
            )
            for notification in notifications:
                tracking = Tracking(app.name, notification.id)
                projection.process_event(app.mapper.to_domain_event(notification), tracking)
            if len(notifications) < 500:
                break
            last = notifications[-1].id
        seconds = time.perf_counter() - started
        return seconds, view.totals(), stored_events(app)
    finally:
        view.datastore.close()
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("load", "rebuild"))
    parser.add_argument("database", choices=("sqlite", "postgresql"))
    parser.add_argument("count", type=int)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CQRSKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--read", default="", help="rebuild: the view's schema (PostgreSQL) or file name tag"
    )
    args = parser.parse_args()
    if args.database == "postgresql" and not args.postgres_url:
        parser.error("postgresql needs --postgres-url")
    if args.action == "load":
        outcome = load(args.database, args.count, args.postgres_url)
    else:
        if not args.read:
            parser.error("rebuild needs --read")
        outcome = rebuild(args.database, args.count, args.postgres_url, args.read)
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
