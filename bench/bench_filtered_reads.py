"""Reading only some event types, side by side: every event decoded (before) vs only the
types a projection handles (after, ``read_all(..., types=...)``).

    .venv/bin/python bench/bench_filtered_reads.py [--events 100000] [--orders 2000]
        [--rounds 5] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

1. **Read**: a projection that handles 1 of 10 event types pages through ``--events``
   stored events (pages of 2,000): before, it reads every event decoded and keeps its
   own (what the runner did); after, it asks the store for its type only. On SQLite and
   PostgreSQL, each variant in every round, in alternating order; medians and ratios.
2. **Orders, reads only**: the five Orders projections' reads, each paging through every
   event of ``--orders`` orders (customers, products, stock moves, orders) as the runner
   reads for it, without writing anything: what reading costs them per stored event.
3. **Orders**: the five Orders projections (order details, order search, sales report,
   catalog, customers) built from scratch in one runner, as the service runs them, over
   the same events, into a fresh read store of the same database: before (the runner
   given every event, as before) and after. Per stored event, all five together.

"Before" is the same runner and store with ``types`` ignored, so that each page is read
and decoded whole and the runner keeps what its projection handles, exactly as it did.
Results go to ``bench/results/filtered_reads.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry

from cqrskit.messages import DomainEvent
from cqrskit.projection import ProjectionRunner
from cqrskit.readstore import open_sql_read_store
from cqrskit.store import (
    START,
    EventPage,
    EventRegistry,
    EventStore,
    Position,
    StreamAppend,
    open_event_store,
)
from orders.bootstrap import event_registry
from orders.domain.events import (
    CustomerRegistered,
    EmailClaimed,
    OrderItemAdded,
    OrderPlaced,
    OrderShipped,
    ProductAdded,
    SkuClaimed,
    StockReserved,
)
from orders.domain.values import Address, OrderLine
from orders.projections import (
    CatalogProjection,
    CustomerProjection,
    OrderDetailsSqlProjection,
    OrderSearchProjection,
    SalesReportProjection,
)

RESULTS = Path(__file__).parent / "results" / "filtered_reads.json"
PAGE = 2000
KINDS = 10


def _kind(n: int) -> type[DomainEvent]:
    class Kind(DomainEvent):
        event_type = f"bench.Kind{n}"
        item_id: uuid.UUID
        name: str
        amount: int
        note: str

    Kind.__name__ = Kind.__qualname__ = f"Kind{n}"
    return Kind


KIND_CLASSES = [_kind(n) for n in range(KINDS)]
WANTED = KIND_CLASSES[0]


class AllTypes:
    """``store`` as readers saw it before ``types``: every page read and decoded whole."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def read_all(
        self,
        after: Position | str = START,
        limit: int = 1000,
        *,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        return await self._store.read_all(after, limit)

    async def next_events(
        self,
        after: Position | str,
        limit: int = 1000,
        *,
        timeout: float,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        return await self._store.next_events(after, limit, timeout=timeout)


# -- stores ---------------------------------------------------------------------------


async def open_events(kind: str, args: argparse.Namespace, registry: EventRegistry) -> Any:
    """An empty event store of ``kind`` and what removes it afterwards."""
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="cqrskit-filtered-")
        store = await open_event_store(f"sqlite:///{folder}/events.db?synchronous=OFF", registry)
        return store, f"sqlite:///{folder}/read.db", None
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = await open_event_store(f"{args.postgres_url}?schema={schema}", registry)
    return store, f"{args.postgres_url}?schema={schema}_read", schema


async def drop(args: argparse.Namespace, schema: str | None) -> None:
    if schema is None:
        return
    conn = await asyncpg.connect(args.postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}_read" CASCADE')
    finally:
        await conn.close()


async def load_kinds(store: EventStore, count: int) -> None:
    """``count`` events of ten types, in rotation, 1,000 per append (100 streams)."""
    for start in range(0, count, 1000):
        appends = []
        for s in range(100):
            events = [
                KIND_CLASSES[(start + s * 10 + i) % KINDS](
                    item_id=uuid.uuid4(), name=f"item {start + s}", amount=i, note="x" * 80
                )
                for i in range(10)
            ]
            appends.append(StreamAppend(f"k-{uuid.uuid4().hex}", events))
        await store.append_many(appends)


async def load_orders(store: EventStore, orders: int) -> None:
    """A shop's history: customers, products, orders placed with stock reserved, items
    added, shipments; about 7 events per order."""
    customers = [uuid.uuid4() for _ in range(max(1, orders // 10))]
    products = [(uuid.uuid4(), f"SKU-{n}", Decimal(10 + n)) for n in range(50)]
    for customer in customers:
        email = f"{customer.hex}@example.com"
        await store.append_many(
            [
                StreamAppend(
                    f"Customer-{customer}",
                    [CustomerRegistered(customer_id=customer, name="C", email=email)],
                ),
                StreamAppend(f"Email-{email}", [EmailClaimed(email=email, customer_id=customer)]),
            ]
        )
    for product_id, sku, price in products:
        await store.append_many(
            [
                StreamAppend(
                    f"Product-{product_id}",
                    [
                        ProductAdded(
                            product_id=product_id, sku=sku, name=sku, price=price, stock=10**9
                        )
                    ],
                ),
                StreamAppend(f"Sku-{sku}", [SkuClaimed(sku=sku, product_id=product_id)]),
            ]
        )
    address = Address(street="1 Rue", city="Paris", postal_code="75001", country="France")
    for n in range(orders):
        order_id = uuid.uuid4()
        picked = [products[(n + k) % len(products)] for k in range(3)]
        lines = [
            OrderLine(product_id=p, sku=s, name=s, unit_price=price, quantity=1)
            for p, s, price in picked
        ]
        total = sum((line.total for line in lines[:2]), Decimal(0))
        placed = OrderPlaced(
            order_id=order_id,
            customer_id=customers[n % len(customers)],
            lines=tuple(lines[:2]),
            shipping_address=address,
            total=total,
        )
        reserve = [
            StreamAppend(
                f"Product-{line.product_id}",
                [StockReserved(product_id=line.product_id, order_id=order_id, quantity=1)],
            )
            for line in lines
        ]
        added = OrderItemAdded(order_id=order_id, line=lines[2], total=total + lines[2].total)
        shipped = OrderShipped(order_id=order_id, tracking_number=f"T{n}")
        await store.append_many(
            [StreamAppend(f"Order-{order_id}", [placed, added, shipped]), *reserve]
        )


# -- scenarios ------------------------------------------------------------------------


async def read_through(store: EventStore, filtered: bool) -> tuple[float, int]:
    """Seconds to page through every event as a projection of ``WANTED`` would."""
    started = time.perf_counter()
    after, kept = START, 0
    while True:
        if filtered:
            page = await store.read_all(after, PAGE, types=(WANTED,))
            kept += len(page)
        else:
            page = await store.read_all(after, PAGE)
            kept += sum(1 for e in page if isinstance(e.event, WANTED))
        if page.scanned < PAGE:
            return time.perf_counter() - started, kept
        after = page.end


def orders_projections() -> list[Any]:
    return [
        OrderDetailsSqlProjection(),
        OrderSearchProjection(),
        SalesReportProjection(),
        CatalogProjection(),
        CustomerProjection(),
    ]


async def read_orders(store: EventStore, filtered: bool) -> float:
    """Seconds for the five Orders projections' reads alone: each pages through every
    event as the runner reads for it (no read-store writes)."""
    started = time.perf_counter()
    for projection in orders_projections():
        after = START
        while True:
            if filtered:
                page = await store.read_all(after, PAGE, types=projection.handles)
            else:
                page = await store.read_all(after, PAGE)
                [e for e in page if projection.handles_event(e)]
            if page.scanned < PAGE:
                break
            after = page.end
    return time.perf_counter() - started


async def build_orders(store: EventStore, read_url: str, filtered: bool) -> float:
    """Seconds for the five Orders projections to catch up from scratch, in one runner."""
    read = await open_sql_read_store(read_url)
    events: Any = store if filtered else AllTypes(store)
    runner = ProjectionRunner(events, idle_wait=0.5, registry=CollectorRegistry())
    projections = orders_projections()
    for projection in projections:
        runner.add(projection, read)
    head = await store.head()
    started = time.perf_counter()
    try:
        async with runner:
            for projection in projections:
                result = await runner.wait_for(projection.name, head, timeout=600)
                assert result.reached, result
            elapsed = time.perf_counter() - started
    finally:
        await read.close()
    return elapsed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    kinds = ["sqlite"] + (["postgres"] if args.postgres_url else [])
    results: dict[str, Any] = {}
    for kind in kinds:
        registry = EventRegistry(KIND_CLASSES)
        store, _, schema = await open_events(kind, args, registry)
        try:
            await load_kinds(store, args.events)
            runs: dict[str, list[float]] = {"before": [], "after": []}
            kept: set[int] = set()
            for round_ in range(args.rounds):
                order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
                for variant in order:
                    seconds, n = await read_through(store, variant == "after")
                    runs[variant].append(seconds)
                    kept.add(n)
            assert len(kept) == 1, kept  # both variants found the same events
            results[f"read/{kind}"] = summarize(runs, args.events)
        finally:
            await store.close()
            await drop(args, schema)

        store, read_base, schema = await open_events(kind, args, event_registry())
        try:
            await load_orders(store, args.orders)
            stored = len(await store.read_all(START, 10**9))
            reads: dict[str, list[float]] = {"before": [], "after": []}
            for round_ in range(args.rounds):
                order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
                for variant in order:
                    reads[variant].append(await read_orders(store, variant == "after"))
            results[f"orders-read/{kind}"] = summarize(reads, stored)
            runs = {"before": [], "after": []}
            for round_ in range(args.rounds):
                order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
                for variant in order:
                    read_url = (
                        read_base.replace("read.db", f"read-{round_}-{variant}.db")
                        if kind == "sqlite"
                        else read_base
                    )
                    runs[variant].append(await build_orders(store, read_url, variant == "after"))
                    if kind == "postgres":
                        await drop_read_schema(args, f"{schema}_read")
            results[f"orders/{kind}"] = summarize(runs, stored)
        finally:
            await store.close()
            await drop(args, schema)
    return results


async def drop_read_schema(args: argparse.Namespace, schema: str) -> None:
    conn = await asyncpg.connect(args.postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def summarize(runs: dict[str, list[float]], events: int) -> dict[str, Any]:
    before = statistics.median(runs["before"])
    after = statistics.median(runs["after"])
    return {
        "events": events,
        "runs": runs,
        "before_s": before,
        "after_s": after,
        "before_us_per_event": before / events * 1e6,
        "after_us_per_event": after / events * 1e6,
        "speedup": before / after,
    }


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"{'scenario':<16} {'events':>8} {'before µs/ev':>13} {'after µs/ev':>12} {'ratio':>7}")
    for name, r in results.items():
        print(
            f"{name:<16} {r['events']:>8} {r['before_us_per_event']:>13.2f} "
            f"{r['after_us_per_event']:>12.2f} {r['speedup']:>6.2f}x"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(),
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "load_average": os.getloadavg(),
                "arguments": vars(args),
                "results": results,
            },
            indent=2,
        )
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CQRSKIT_TEST_POSTGRES_URL", ""),
        help="PostgreSQL to bench on as well (empty: SQLite only)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    print(f"load average before: {os.getloadavg()}")
    report(asyncio.run(run(arguments)), arguments)
    print(f"load average after: {os.getloadavg()}")
