"""Projection benchmark: rebuild throughput and peak memory, append-to-visible latency.

    .venv/bin/python bench/bench_projections.py [--sizes 10000,100000,1000000]
        [--peer-sizes 10000,100000] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]
        [--latency-seconds 10] [--batch-size 10000] [--repeat 1] [--only rebuild|latency]

``--repeat N`` runs every scenario N times, in interleaved rounds, and reports each
number's median (every run is kept in the JSON).

1. **Rebuild**: an order-summary projection (an ``orders`` table upserted per order stream
   and a ``customers`` counter table) is built from scratch, from each of ``--sizes``
   stored events, into SQLite (events in SQLite) and into PostgreSQL (events in
   PostgreSQL). Each rebuild runs in a fresh process, so its peak RSS is its own. Beside
   it, at each of ``--peer-sizes``, the same read model on eventsourcing's projection
   runner over the same events in its own recorders (``bench/peer_projection.py``; the
   bench extra). The peer commits every event on its own, so its 1M rebuilds take
   minutes: ask for them with ``--peer-sizes``. Both read models commit with the same
   durability: SQLite ``synchronous=FULL``, PostgreSQL ``synchronous_commit=off``.
2. **Append-to-visible**: with the runner live, a writer appends one event every 10 ms;
   for each append, the time until ``wait_for`` on its token returns, counted from the
   moment ``append`` returned (the event is committed and the client holds its token) and
   from the start of the ``append`` call (which adds the append's own commit, a WAL flush
   on PostgreSQL). On PostgreSQL the waiter uses a second read-store handle, so it is woken
   by LISTEN/NOTIFY exactly as another API process would be, and the runner runs once in
   the writer's process and once in a process of its own (woken by the event store's
   NOTIFY, as a separate runner deployment is). Side by side, the same runner with
   live reads in two steps (wait for events, then read them: one more query per
   wake-up), to show what ``EventStore.next_events`` saves; that row has no goal.

Events are bulk-loaded (SQLite: ``executemany`` into the event table; PostgreSQL: ``COPY``;
the peer's through its recorder) once and reused by later runs. Results go to
``bench/results/projections.json``, the plot of rebuild time and memory against events to
``docs/bench/projection_rebuilds.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import asyncpg
from prometheus_client import CollectorRegistry

from _publish import publish
from _rebuild_data import (
    CREATE_CUSTOMERS,
    CREATE_ORDERS,
    CUSTOMER_UPSERT,
    CUSTOMERS,
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
from cqrskit.consistency import wait_for
from cqrskit.messages import DomainEvent
from cqrskit.projection import Projection, ProjectionRunner
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork, open_sql_read_store
from cqrskit.store import EventRegistry, EventStore, RecordedEvent, open_event_store
from cqrskit.store._common import EventStoreBase

RESULTS = Path(__file__).parent / "results" / "projections.json"


class OrderPlaced(DomainEvent):
    event_type = PLACED
    customer: str


class OrderLineAdded(DomainEvent):
    event_type = LINE_ADDED
    sku: str
    quantity: int
    price_cents: int


class OrderShipped(DomainEvent):
    event_type = SHIPPED
    customer: str
    total_cents: int


REGISTRY = EventRegistry([OrderPlaced, OrderLineAdded, OrderShipped])


def _ours(statement: str) -> str:
    """A read-model statement as the SQL read store takes it: its own ``{table}`` names
    (the live version's, filled in per unit of work) and ``?`` placeholders."""
    return statement.format(p="?", orders="{orders}", customers="{customers}")


class OrderSummary(Projection[SqlUnitOfWork]):
    """One row per order, one counter row per customer; the same SQL on both databases.

    Each batch is folded in memory first (an order's ten events become one UPSERT), then
    written with one ``executemany`` per table. The ``version`` guard makes the order rows
    idempotent; the customer counters rely on the checkpoint committing with them.
    """

    name = "order_summary"
    handles = (OrderPlaced, OrderLineAdded, OrderShipped)
    tables = ("orders", "customers")

    async def setup(self, uow: SqlUnitOfWork) -> None:
        await uow.execute(_ours(CREATE_ORDERS))
        await uow.execute(_ours(CREATE_CUSTOMERS))

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        orders: dict[str, list[Any]] = {}
        customers: dict[str, list[int]] = {}
        for recorded in events:
            row = orders.get(recorded.stream_id)
            if row is None:
                row = orders[recorded.stream_id] = [recorded.stream_id, None, None, 0, 0, 0]
            row[5] = recorded.version
            match recorded.event:
                case OrderPlaced(customer=customer):
                    row[1], row[2] = customer, "placed"
                    customers.setdefault(customer, [0, 0])[0] += 1
                case OrderLineAdded(quantity=quantity, price_cents=price):
                    row[3] += 1
                    row[4] += quantity * price
                case OrderShipped(customer=customer, total_cents=total):
                    row[2] = "shipped"
                    customers.setdefault(customer, [0, 0])[1] += total
        await uow.executemany(_ours(ORDER_UPSERT), orders.values())
        await uow.executemany(
            _ours(CUSTOMER_UPSERT), [(c, n, revenue) for c, (n, revenue) in customers.items()]
        )


# -- bulk loading ------------------------------------------------------------------------


async def sqlite_events(count: int) -> str:
    """A SQLite event store holding ``count`` events (made once, then reused)."""
    path = DATA / f"events-{count}.db"
    url = f"sqlite:///{path}"
    if path.exists():
        with sqlite3.connect(path) as db:
            if db.execute("SELECT count(*) FROM events").fetchone()[0] == count:
                return url
        path.unlink()
    DATA.mkdir(parents=True, exist_ok=True)
    store = await open_event_store(url, REGISTRY)  # creates the schema
    await store.close()
    now = datetime.now(UTC).isoformat()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    for offset in range(0, count, 100_000):
        rows = order_rows(min(100_000, count - offset), offset)
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO events (stream_id, version, event_type, schema_version, data, "
            "metadata, recorded_at) VALUES (?, ?, ?, 1, ?, ?, ?)",
            [(*row, now) for row in rows],
        )
        db.execute("COMMIT")
    db.close()
    return url


async def postgres_events(base_url: str, count: int) -> str:
    """A PostgreSQL event store (schema ``bench_proj_<count>``) holding ``count`` events."""
    schema = f"bench_proj_{count}"
    url = f"{base_url}?schema={schema}"
    conn = await asyncpg.connect(base_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.events")
        if exists and await conn.fetchval(f'SELECT count(*) FROM "{schema}".events') == count:
            return url
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    store = await open_event_store(url, REGISTRY)
    await store.close()
    conn = await asyncpg.connect(base_url)
    try:
        for offset in range(0, count, 100_000):
            rows = order_rows(min(100_000, count - offset), offset)
            await conn.copy_records_to_table(
                "events",
                schema_name=schema,
                columns=[
                    "stream_id",
                    "version",
                    "event_type",
                    "schema_version",
                    "data",
                    "metadata",
                ],
                records=[(s, v, t, 1, d, m) for s, v, t, d, m in rows],
            )
        await conn.execute(f'ANALYZE "{schema}".events')
    finally:
        await conn.close()
    return url


# -- rebuild, in a child process ----------------------------------------------------------


async def rebuild(event_url: str, read_url: str, batch_size: int) -> dict[str, Any]:
    """Build the projection from scratch; runs in its own process for an honest peak RSS."""
    events = await open_event_store(event_url, REGISTRY)
    store: SqlReadStore = await open_sql_read_store(read_url)
    total = 0
    runner = ProjectionRunner(events, registry=CollectorRegistry(), batch_size=batch_size)
    runner.add(OrderSummary(), store)
    head = await events.head()
    started = time.perf_counter()
    async with runner:
        result = await wait_for(store, "order_summary", head, timeout=3600)
    seconds = time.perf_counter() - started
    assert result.reached, result
    total = runner.metrics.registry.get_sample_value(
        "cqrskit_projection_events_processed_total", {"projection": "order_summary"}
    )
    totals = await store.fetchone("order_summary", MODEL_TOTALS)
    assert totals is not None
    await store.close()
    await events.close()
    return {
        "events": int(total or 0),
        "seconds": round(seconds, 3),
        "events_per_second": round((total or 0) / seconds),
        "peak_rss_mb": peak_rss_mb(),
        **{name: int(totals[name]) for name in TOTALS},
    }


def run_child(script: str, *arguments: str) -> dict[str, Any]:
    """Run ``script`` (in bench/) in a process of its own; its last line is its JSON result."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name(script)), *arguments],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    if done.returncode:
        raise SystemExit(f"{script} {' '.join(arguments)} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


async def fresh_schema(base_url: str) -> tuple[str, str]:
    schema = f"bench_read_{uuid.uuid4().hex[:8]}"
    return schema, f"{base_url}?schema={schema}"


async def drop_schema(base_url: str, schema: str) -> None:
    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


# -- append-to-visible latency ----------------------------------------------------------


async def run_runner(event_url: str, read_url: str) -> None:
    """``--runner-child``: keep the projection live until stdin closes."""
    events = await open_event_store(event_url, REGISTRY)
    store: SqlReadStore = await open_sql_read_store(read_url)
    runner = ProjectionRunner(events, registry=CollectorRegistry())
    runner.add(OrderSummary(), store)
    async with runner:
        print("running", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await store.close()
    await events.close()


def wait_then_read(events: EventStore) -> EventStore:
    """``events`` with the generic ``next_events`` (wait, then read: two queries per
    wake-up on PostgreSQL), for the side-by-side scenario of the one-query wake-up."""
    setattr(events, "next_events", functools.partial(EventStoreBase.next_events, events))  # noqa: B010
    return events


async def latency(
    event_url: str,
    read_url: str,
    seconds: float,
    interval: float,
    own_process: bool = False,
    two_step: bool = False,
) -> dict[str, Any]:
    """Append-to-visible under a steady write load. The runner runs in this process, or
    with ``own_process`` in a child process of its own (woken by the event store's
    NOTIFY, as a separate runner deployment is). ``two_step``: the runner waits for
    events and then reads them, as before ``next_events`` existed."""
    events = await open_event_store(event_url, REGISTRY)
    child: asyncio.subprocess.Process | None = None
    store: SqlReadStore | None = None
    if own_process:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--runner-child",
            event_url,
            read_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
        )
        assert child.stdout is not None
        await child.stdout.readline()
    else:
        store = await open_sql_read_store(read_url)
    # On PostgreSQL the waiter is always a handle of its own, woken by NOTIFY like another
    # API process; SQLite's read store wakes waiters in-process only.
    waiter: SqlReadStore = (
        store
        if store is not None and "postgres" not in read_url
        else await open_sql_read_store(read_url)
    )
    running: contextlib.AbstractAsyncContextManager[Any] = contextlib.nullcontext()
    if store is not None:
        runner = ProjectionRunner(
            wait_then_read(events) if two_step else events, registry=CollectorRegistry()
        )
        runner.add(OrderSummary(), store)
        running = runner
    samples: list[float] = []
    from_commit: list[float] = []
    pending: set[asyncio.Task[None]] = set()

    async def measure(started: float, committed: float, token: str) -> None:
        result = await wait_for(waiter, "order_summary", token, timeout=10)
        assert result.reached, result
        visible = time.perf_counter()
        samples.append(visible - started)
        from_commit.append(visible - committed)

    async with running:
        assert (await wait_for(waiter, "order_summary", await events.head(), 3600)).reached
        run = uuid.uuid4().hex[:8]
        deadline = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            stream = f"latency-{run}-{n // EVENTS_PER_ORDER}"
            event = (
                OrderPlaced(customer="customer-1")
                if n % EVENTS_PER_ORDER == 0
                else OrderLineAdded(sku="SKU-1", quantity=1, price_cents=100)
            )
            token = str((await events.append(stream, [event])).position)
            task = asyncio.create_task(measure(started, time.perf_counter(), token))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
        await asyncio.gather(*pending)
    if child is not None:
        assert child.stdin is not None
        child.stdin.close()
        await child.wait()
    if waiter is not store:
        await waiter.close()
    if store is not None:
        await store.close()
    await events.close()
    return {
        "appends": len(samples),
        "rate_per_second": round(len(samples) / seconds),
        **_percentiles(from_commit, ""),
        **_percentiles(samples, "from_call_"),
    }


def _percentiles(samples: list[float], prefix: str) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        f"{prefix}p50_ms": round(statistics.median(ordered) * 1000, 2),
        f"{prefix}p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        f"{prefix}max_ms": round(ordered[-1] * 1000, 2),
    }


# -- main ----------------------------------------------------------------------------------


LATENCY_SCENARIOS: Final = (
    # name, on PostgreSQL, runner in its own process, wait-then-read live reads
    ("sqlite", False, False, False),
    ("postgresql", True, False, False),
    ("postgresql, runner apart", True, True, False),
    ("postgresql, wait then read", True, False, True),
)
COMPARISONS: Final = ("postgresql, wait then read",)
"""Scenarios that show what a mechanism gains, not what a deployment gets: no goal."""


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def rebuild_round(
    args: argparse.Namespace,
    runs: dict[str, list[dict[str, Any]]],
    peer_runs: dict[str, list[dict[str, Any]]],
) -> None:
    databases = ("sqlite", "postgresql") if args.postgres_url else ("sqlite",)
    for count in args.sizes:
        for database in databases:
            key = f"{database}/{count}"
            print(f"loading {count:,} events into {database} ...", flush=True)
            tag = uuid.uuid4().hex[:8]
            if database == "sqlite":
                event_url = await sqlite_events(count)
                read_path = DATA / f"read-{tag}.db"
                try:
                    outcome = run_child(
                        "bench_projections.py",
                        "--child",
                        event_url,
                        f"sqlite:///{read_path}?synchronous=FULL",
                        str(args.batch_size),
                    )
                finally:
                    remove_sqlite(read_path)
            else:
                event_url = await postgres_events(args.postgres_url, count)
                schema, read_url = await fresh_schema(args.postgres_url)
                try:
                    outcome = run_child(
                        "bench_projections.py", "--child", event_url, read_url, str(args.batch_size)
                    )
                finally:
                    await drop_schema(args.postgres_url, schema)
            runs.setdefault(key, []).append(outcome)
            print(f"  cqrskit {key}: {outcome}", flush=True)
            if count in args.peer_sizes:
                peer = ("--postgres-url", args.postgres_url)
                run_child("peer_projection.py", "load", database, str(count), *peer)
                read = f"bench_peer_read_{tag}"
                try:
                    outcome = run_child(
                        "peer_projection.py", "rebuild", database, str(count), *peer, "--read", read
                    )
                finally:
                    if database == "sqlite":
                        remove_sqlite(DATA / f"peer-{read}.db")
                    else:
                        await drop_schema(args.postgres_url, read)
                ours = runs[key][-1]
                outcome["same_model"] = all(outcome[name] == ours[name] for name in TOTALS)
                peer_runs.setdefault(key, []).append(outcome)
                print(f"  eventsourcing {key}: {outcome}", flush=True)
                if not outcome["same_model"]:
                    print(f"  !! {key}: the two read models differ", flush=True)


async def latency_round(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> None:
    for key, on_postgres, own_process, two_step in LATENCY_SCENARIOS:
        if not on_postgres:
            where = DATA / f"latency-{uuid.uuid4().hex[:8]}"
            where.mkdir(parents=True)
            event_url, read_url = f"sqlite:///{where}/events.db", f"sqlite:///{where}/read.db"
            try:
                outcome = await latency(event_url, read_url, args.latency_seconds, args.interval)
            finally:
                shutil.rmtree(where)
        elif args.postgres_url:
            schema = f"bench_latency_{uuid.uuid4().hex[:8]}"
            url = f"{args.postgres_url}?schema={schema}"
            try:
                outcome = await latency(
                    url, url, args.latency_seconds, args.interval, own_process, two_step
                )
            finally:
                await drop_schema(args.postgres_url, schema)
        else:
            continue
        runs.setdefault(key, []).append(outcome)
        print(f"  {key} append-to-visible: {outcome}", flush=True)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each number's median over the runs (with every run kept), so noise shows as spread."""
    summary: dict[str, Any] = {
        key: round(statistics.median(r[key] for r in runs), 2)
        for key in runs[0]
        if not isinstance(runs[0][key], bool)
    }
    summary["runs"] = runs
    return summary


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rebuilds: dict[str, list[dict[str, Any]]] = {}
    peer_rebuilds: dict[str, list[dict[str, Any]]] = {}
    latencies: dict[str, list[dict[str, Any]]] = {}
    # Rounds interleave the scenarios, so a slow spell of the machine hits all of them.
    for round_number in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"== round {round_number} of {args.repeat}", flush=True)
        if "rebuild" in args.only:
            await rebuild_round(args, rebuilds, peer_rebuilds)
        if "latency" in args.only:
            await latency_round(args, latencies)
    return {
        "rebuild": {key: medians(runs) for key, runs in rebuilds.items()},
        "peer_rebuild": {key: medians(runs) for key, runs in peer_rebuilds.items()},
        "latency": {key: medians(runs) for key, runs in latencies.items()},
    }


def report(results: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    rebuild, peer = results["rebuild"], results["peer_rebuild"]
    largest = max(args.sizes)
    rates = [r["events_per_second"] for k, r in rebuild.items() if k.endswith(f"/{largest}")]
    # A rebuild holds the batch it is writing and the one read ahead: from two batches on
    # it holds all it ever will, so flat is measured between the sizes that reach that.
    full = [count for count in args.sizes if count >= 2 * args.batch_size]
    goals: dict[str, bool] = {}
    if rebuild:
        goals[f"rebuild >= 50k events/s at {largest:,} events (median)"] = (
            bool(rates) and min(rates) >= 50_000
        )
    if rebuild and len(full) >= 2:
        smallest = min(full)
        goals[f"peak RSS flat ({smallest:,} vs {largest:,} events, within 25%)"] = all(
            rebuild[f"{db}/{largest}"]["peak_rss_mb"]
            <= 1.25 * rebuild[f"{db}/{smallest}"]["peak_rss_mb"]
            for db in ("sqlite", "postgresql")
            if f"{db}/{largest}" in rebuild
        )
    elif rebuild:
        print("no flat-memory goal: it needs two --sizes of at least two batches each")
    if peer:
        goals["both runners built the same read model"] = all(
            run["same_model"] for r in peer.values() for run in r["runs"]
        )
    if results["latency"]:
        goals["append-to-visible p99 <= 20 ms (from commit, median)"] = all(
            r["p99_ms"] <= 20 for key, r in results["latency"].items() if key not in COMPARISONS
        )
    print()
    print(
        f"{'rebuild':<22}{'events':>10}{'seconds':>10}{'events/s':>11}{'peak RSS MB':>13}"
        f"{'peer events/s':>15}{'peer RSS MB':>13}{'ratio':>8}"
    )
    for key, r in rebuild.items():
        line = (
            f"{key:<22}{r['events']:>10,}{r['seconds']:>10.1f}"
            f"{r['events_per_second']:>11,}{r['peak_rss_mb']:>13.1f}"
        )
        if key in peer:
            theirs = peer[key]
            ratio = r["events_per_second"] / theirs["events_per_second"]
            line += (
                f"{theirs['events_per_second']:>15,}{theirs['peak_rss_mb']:>13.1f}{ratio:>7.1f}x"
            )
        print(line)
    print()
    print(
        f"{'append-to-visible, ms':<28}{'appends':>8}  {'from commit: p50':>16}{'p99':>7}{'max':>7}"
        f"  {'from call: p50':>14}{'p99':>7}{'max':>7}"
    )
    for key, r in results["latency"].items():
        print(
            f"{key:<28}{r['appends']:>8.0f}  {r['p50_ms']:>16}{r['p99_ms']:>7}{r['max_ms']:>7}"
            f"  {r['from_call_p50_ms']:>14}{r['from_call_p99_ms']:>7}{r['from_call_max_ms']:>7}"
        )
    print()
    for goal, met in goals.items():
        print(f"{'met    ' if met else 'NOT met'} {goal}")
    return {
        "command": " ".join(["bench/bench_projections.py", *sys.argv[1:]]),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "settings": {
            "rebuild_batch_size": args.batch_size,
            "events_per_order": EVENTS_PER_ORDER,
            "customers": CUSTOMERS,
            "append_interval_ms": args.interval * 1000,
            "latency_seconds": args.latency_seconds,
            "repeat": args.repeat,
            "sizes": args.sizes,
            "peer_sizes": args.peer_sizes,
            "peer": "eventsourcing 9.5.6 (ProjectionRunner on PostgreSQL; its subscription's "
            "pull loop on SQLite, whose recorder has no subscription)",
            "read_model_durability": {
                "sqlite": "synchronous=FULL, both sides",
                "postgresql": "synchronous_commit=off, both sides",
            },
        },
        **results,
        "goals": goals,
    }


def _counts(text: str) -> tuple[int, ...]:
    """A comma-separated list of event counts, each whole orders."""
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 10000,100000: {text!r}") from None
    if any(count <= 0 or count % EVENTS_PER_ORDER for count in counts):
        raise argparse.ArgumentTypeError(
            f"each count must be a positive multiple of {EVENTS_PER_ORDER}"
        )
    return counts


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=_counts, default=(10_000, 100_000, 1_000_000), help="events per rebuild"
    )
    parser.add_argument(
        "--peer-sizes",
        type=_counts,
        default=(10_000, 100_000),
        help="sizes that eventsourcing rebuilds too (empty: none); 1M takes it minutes",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CQRSKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
        help="empty to skip PostgreSQL",
    )
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between appends")
    parser.add_argument(
        "--batch-size", type=int, default=10000, help="the runner's batch size for rebuilds"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of every scenario; medians are reported"
    )
    parser.add_argument(
        "--only",
        choices=("rebuild", "latency"),
        action="append",
        help="run only these parts (repeatable; default both)",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("EVENT_URL", "READ_URL", "BATCH"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--runner-child", nargs=2, metavar=("EVENT_URL", "READ_URL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not args.sizes:
        parser.error("--sizes needs at least one count")
    if extra := set(args.peer_sizes) - set(args.sizes):
        parser.error(f"--peer-sizes must be among --sizes; not in it: {sorted(extra)}")
    args.only = tuple(args.only or ("rebuild", "latency"))
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.runner_child:
        asyncio.run(run_runner(*arguments.runner_child))
    elif arguments.child:
        event_url, read_url, batch = arguments.child
        print(json.dumps(asyncio.run(rebuild(event_url, read_url, int(batch)))))
    else:
        publish(RESULTS, report(asyncio.run(main(arguments)), arguments), "projection_plots")
