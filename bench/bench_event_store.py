"""PostgreSQL event store against raw asyncpg on the same table shape, side by side.

    .venv/bin/python bench/bench_event_store.py [--url postgresql://...] [--rounds 5]

Each scenario runs the store and a raw asyncpg loop (the physical limit: pre-encoded rows,
no version checks, no NOTIFY) in alternating order, several rounds; the table shows the
medians in events per second and the store/raw ratio. Results also go to
``bench/results/event_store.json``. The raw loops write to a table made by the same
migration as the store's, in a schema of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from cqrskit.messages import DomainEvent, Metadata
from cqrskit.store import NO_STREAM, START, EventRegistry
from cqrskit.store._pg_append import append_one_event_sql
from cqrskit.store.postgres import NotifyMode, PostgresEventStore

RESULTS = Path(__file__).parent / "results" / "event_store.json"
SLICES = 4


class LineAdded(DomainEvent):
    """A typical small event: a few strings and numbers, plus full metadata."""

    event_type = "bench.LineAdded"
    order_id: str
    sku: str
    quantity: int
    price_cents: int


REGISTRY = EventRegistry([LineAdded])
ROOT = Metadata(user_id="bench-user")


def _event(n: int) -> LineAdded:
    return LineAdded(
        order_id=f"order-{n // 10}",
        sku=f"SKU-{n % 97:05d}",
        quantity=1 + n % 5,
        price_cents=199 + n,
        metadata=ROOT.caused(),
    )


INSERT_ONE = (
    "INSERT INTO {s}.events (stream_id, version, event_type, schema_version, data, metadata) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)
INSERT_UNNEST = (
    "INSERT INTO {s}.events (stream_id, version, event_type, schema_version, data, metadata) "
    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::int[], $5::jsonb[], "
    "$6::jsonb[])"
)
SELECT_ALL = (
    "SELECT stream_id, version, transaction_id, global_position, event_type, schema_version, "
    "data, metadata, recorded_at FROM {s}.events WHERE (transaction_id, global_position) > "
    "($1::xid8, $2) AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) "
    "ORDER BY transaction_id, global_position LIMIT $3"
)


@dataclass
class Scenario:
    """One row of the table: the same work done by the store and by raw asyncpg."""

    name: str
    events: int
    store: Callable[[int], Awaitable[None]]
    raws: dict[str, Callable[[int], Awaitable[None]]]
    goal: str = ""
    reference: str = ""  # the raw the ratio is taken against; the fastest when empty
    results: dict[str, list[float]] = field(default_factory=dict)

    def median(self, who: str) -> float:
        return statistics.median(self.results[who])

    def ratio(self, raw: str) -> float:
        """The median over rounds of store/raw: each round's pair ran interleaved, so
        this is steadier than the ratio of the medians when the load drifts."""
        pairs = zip(self.results["store"], self.results[raw], strict=True)
        return statistics.median(store / other for store, other in pairs)


class Bench:
    """The stores, the raw pool and the row data shared by every scenario."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.tag = uuid.uuid4().hex[:8]
        self.store_schema = f"bench_store_{self.tag}"
        self.raw_schema = f"bench_raw_{self.tag}"
        self.stores: dict[NotifyMode, PostgresEventStore] = {}
        self.raw: asyncpg.Pool | None = None
        encoded = [REGISTRY.encode(_event(n)) for n in range(100)]
        self.rows = [(e.event_type, e.schema_version, e.data, e.metadata) for e in encoded]
        self.events = [_event(n) for n in range(100)]

    def _url(self, schema: str) -> str:
        return f"{self.url}{'&' if '?' in self.url else '?'}schema={schema}"

    async def setup(self) -> None:
        for mode in ("in_transaction", "after_commit"):
            self.stores[mode] = await PostgresEventStore.open(
                self._url(self.store_schema), REGISTRY, max_connections=17, notify=mode
            )
        # Same DDL as the store's table, in its own schema.
        await (await PostgresEventStore.open(self._url(self.raw_schema), REGISTRY)).close()
        self.raw = await asyncpg.create_pool(self.url, min_size=16, max_size=17)
        async with self.raw.acquire() as conn:
            await conn.execute(f"VACUUM ANALYZE {self.raw_schema}.events")

    async def teardown(self) -> None:
        for store in self.stores.values():
            await store.close()
        assert self.raw is not None
        async with self.raw.acquire() as conn:
            await conn.execute(f"DROP SCHEMA {self.store_schema} CASCADE")
            await conn.execute(f"DROP SCHEMA {self.raw_schema} CASCADE")
        await self.raw.close()

    # -- appends --------------------------------------------------------------------------

    def store_appends(
        self, writers: int, batch: int, mode: NotifyMode = "after_commit"
    ) -> Callable[[int], Awaitable[None]]:
        """Each writer appends ``batch`` events at a time to its own stream, at the
        version it knows (as a command handler does after loading the aggregate)."""

        async def run(total: int) -> None:
            store = self.stores[mode]

            async def writer() -> None:
                stream = f"s-{uuid.uuid4().hex}"
                version = NO_STREAM
                for n in range(total // writers // batch):
                    events = self.events[:batch] if batch > 1 else [self.events[n % 100]]
                    version = (await store.append(stream, events, version)).version

            await asyncio.gather(*(writer() for _ in range(writers)))

        return run

    def raw_inserts(self, writers: int, notify: bool = False) -> Callable[[int], Awaitable[None]]:
        """Each writer INSERTs one pre-encoded row per statement (autocommit); with
        ``notify``, the same statement also NOTIFYs, as the store does by default."""

        async def run(total: int) -> None:
            assert self.raw is not None
            sql = INSERT_ONE.format(s=self.raw_schema)
            if notify:
                sql = f"WITH i AS ({sql} RETURNING 1) SELECT pg_notify('bench', '') FROM i"

            async def writer() -> None:
                stream = f"r-{uuid.uuid4().hex}"
                assert self.raw is not None
                async with self.raw.acquire() as conn:
                    for n in range(total // writers):
                        await conn.execute(sql, stream, n + 1, *self.rows[n % 100])

            await asyncio.gather(*(writer() for _ in range(writers)))

        return run

    def raw_store_statement(self, writers: int) -> Callable[[int], Awaitable[None]]:
        """The store's own single-event append statement (version check included, no
        NOTIFY), run like the raw INSERT: pre-encoded rows, one connection per writer
        held throughout. Not a baseline: it splits the store's gap into the statement's
        share (server) and the rest (client: pool, encoding, result, after-commit NOTIFY)."""

        async def run(total: int) -> None:
            assert self.raw is not None
            sql = append_one_event_sql(f'"{self.raw_schema}"', keyed=False)

            async def writer() -> None:
                stream = f"a-{uuid.uuid4().hex}"
                assert self.raw is not None
                async with self.raw.acquire() as conn:
                    for n in range(total // writers):
                        await conn.fetchrow(sql, stream, n, *self.rows[n % 100], None)

            await asyncio.gather(*(writer() for _ in range(writers)))

        return run

    def raw_unnest(self, batch: int) -> Callable[[int], Awaitable[None]]:
        """``batch`` pre-encoded rows per INSERT ... SELECT FROM unnest (one statement)."""

        async def run(total: int) -> None:
            assert self.raw is not None
            sql = INSERT_UNNEST.format(s=self.raw_schema)
            stream = f"u-{uuid.uuid4().hex}"
            columns = list(zip(*self.rows[:batch], strict=True))
            async with self.raw.acquire() as conn:
                for n in range(total // batch):
                    versions = list(range(n * batch + 1, (n + 1) * batch + 1))
                    await conn.execute(sql, [stream] * batch, versions, *map(list, columns))

        return run

    def raw_executemany(self, batch: int) -> Callable[[int], Awaitable[None]]:
        """``batch`` pre-encoded rows per executemany (pipelined, one transaction)."""

        async def run(total: int) -> None:
            assert self.raw is not None
            sql = INSERT_ONE.format(s=self.raw_schema)
            stream = f"m-{uuid.uuid4().hex}"
            async with self.raw.acquire() as conn:
                for n in range(total // batch):
                    rows = [(stream, n * batch + i + 1, *self.rows[i % 100]) for i in range(batch)]
                    await conn.executemany(sql, rows)

        return run

    # -- reading --------------------------------------------------------------------------

    async def fill_for_reading(self, count: int) -> None:
        store = self.stores["in_transaction"]
        for n in range(count // 100):
            await store.append(f"read-{n}", self.events, NO_STREAM)

    def store_read_all(self) -> Callable[[int], Awaitable[None]]:
        """read_all in pages of 1000 from the start, decoding every event."""

        async def run(total: int) -> None:
            store = self.stores["in_transaction"]
            after, seen = START, 0
            while seen < total:
                page = await store.read_all(after, limit=1000)
                if not page:
                    raise RuntimeError(f"only {seen} events to read, wanted {total}")
                seen += len(page)
                after = page[-1].position

        return run

    def raw_read_all(self, validate: bool = False) -> Callable[[int], Awaitable[None]]:
        """The same query and pages, rows left undecoded; with ``validate``, each row's
        payload and metadata validated into its pydantic class and nothing else (no
        positions, no ``RecordedEvent``): the floor for any decoding read path."""
        validator = LineAdded.__pydantic_validator__.validate_json

        async def run(total: int) -> None:
            assert self.raw is not None
            sql = SELECT_ALL.format(s=self.store_schema)
            commit, seq, seen = 0, 0, 0
            async with self.raw.acquire() as conn:
                while seen < total:
                    rows = await conn.fetch(sql, commit, seq, 1000)
                    seen += len(rows)
                    commit, seq = rows[-1][2], rows[-1][3]
                    if validate:
                        for row in rows:
                            validator(f'{row[6][:-1]}, "metadata": {row[7]}}}')

        return run


async def _timed(run: Callable[[int], Awaitable[None]], events: int) -> float:
    """Seconds ``run`` takes for ``events`` events."""
    started = time.perf_counter()
    await run(events)
    return time.perf_counter() - started


async def main(url: str, rounds: int, scale: float) -> dict[str, Any]:
    load_before = os.getloadavg()
    bench = Bench(url)
    await bench.setup()
    read_events = int(48_000 * scale)
    try:
        await bench.fill_for_reading(read_events)
        scenarios = []
        for writers, goal in ((1, ">= 0.85x raw"), (16, ">= 0.8x raw")):
            name = f"single-event appends, {writers} writer{'s' if writers > 1 else ''}"
            events = int(800 * writers**0.5 * scale)  # 800 for 1 writer, 3200 for 16
            scenarios += [
                Scenario(
                    name,
                    events,
                    bench.store_appends(writers, 1),
                    {
                        "raw INSERT": bench.raw_inserts(writers),
                        "store statement alone": bench.raw_store_statement(writers),
                    },
                    goal,
                    reference="raw INSERT",
                ),
                Scenario(
                    f"{name}, notify=in_transaction",
                    events,
                    bench.store_appends(writers, 1, "in_transaction"),
                    {
                        "raw INSERT": bench.raw_inserts(writers),
                        "raw INSERT + NOTIFY": bench.raw_inserts(writers, notify=True),
                    },
                    f"({goal})",
                ),
            ]
        scenarios += [
            Scenario(
                "100-event appends, 1 writer",
                int(10_000 * scale),
                bench.store_appends(1, 100),
                {
                    "raw INSERT unnest": bench.raw_unnest(100),
                    "raw executemany": bench.raw_executemany(100),
                },
            ),
            Scenario(
                "read_all, decoded (raw: undecoded rows)",
                read_events,
                bench.store_read_all(),
                {
                    "raw fetch": bench.raw_read_all(),
                    "raw fetch + pydantic validation": bench.raw_read_all(validate=True),
                },
                ">= 150k events/s",
                reference="raw fetch",
            ),
        ]
        for scenario in scenarios:
            # One untimed pass warms statement caches and the server's buffers.
            await scenario.store(min(scenario.events, 1600))
            for raw in scenario.raws.values():
                await raw(min(scenario.events, 1600))
        for number in range(rounds):
            for scenario in scenarios:
                runs = [("store", scenario.store), *scenario.raws.items()]
                # The machine's load drifts within seconds: each round runs the store and
                # the raw loops in alternating slices, so drift hits them alike.
                elapsed = dict.fromkeys((who for who, _ in runs), 0.0)
                piece = scenario.events // SLICES
                for slice_number in range(SLICES):
                    for who, run in runs if slice_number % 2 else runs[::-1]:
                        elapsed[who] += await _timed(run, piece)
                for who, seconds in elapsed.items():
                    scenario.results.setdefault(who, []).append(piece * SLICES / seconds)
            print(f"round {number + 1}/{rounds} done", file=sys.stderr)
    finally:
        await bench.teardown()
    report = _report(scenarios, url, rounds)
    report["machine"]["load_average_1m"] = {
        "before": round(load_before[0], 2),
        "after": round(os.getloadavg()[0], 2),
    }
    return report


def _report(scenarios: list[Scenario], url: str, rounds: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for s in scenarios:
        raw_name = s.reference or max(s.raws, key=s.median)
        raw = s.median(raw_name)
        store = s.median("store")
        rows.append(
            {
                "scenario": s.name,
                "events_per_round": s.events,
                "store_events_per_s": round(store),
                "raw_events_per_s": round(raw),
                "raw": raw_name,
                "ratio": round(s.ratio(raw_name), 3),
                "goal": s.goal,
                "other_raw_events_per_s": {
                    name: round(s.median(name)) for name in s.raws if name != raw_name
                },
                "other_ratios": {
                    name: round(s.ratio(name), 3) for name in s.raws if name != raw_name
                },
                "rounds": {who: [round(r) for r in rates] for who, rates in s.results.items()},
            }
        )
    header = f"{'scenario':<55} {'store ev/s':>11} {'raw ev/s':>10} {'ratio':>6}  goal"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['scenario']:<55} {row['store_events_per_s']:>11,} "
            f"{row['raw_events_per_s']:>10,} {row['ratio']:>6.2f}  {row['goal']}"
        )
        for name, rate in row["other_raw_events_per_s"].items():
            ratio = row["other_ratios"][name]
            print(f"{'  (against ' + name + ')':<55} {'':>11} {rate:>10,} {ratio:>6.2f}")
    return {
        "benchmark": "event_store",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "server": url.rsplit("@", 1)[-1],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rounds": rounds,
        "statistic": "median events/s over rounds; ratio: median over rounds of store/raw",
        "results": rows,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "CQRSKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every event count")
    parser.add_argument("--no-json", action="store_true", help="do not write the results file")
    args = parser.parse_args()
    report = asyncio.run(main(args.url, args.rounds, args.scale))
    if not args.no_json:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {RESULTS}", file=sys.stderr)
