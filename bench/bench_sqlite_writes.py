"""SQLite event store appends: before and after the writer thread and group commit.

    .venv/bin/python bench/bench_sqlite_writes.py [--rounds 7] [--appends 600]

Each of 1, 4, 16 and 64 concurrent writers appends single events to its own stream at the
version it knows (as a command handler does), ``synchronous=FULL`` (the default: every
append durable when it returns). Variants, run in alternating order within every round so
that load drifting over seconds hits each alike:

- ``before``: the store as it was at commit ``b2feb0d`` (a thread-pool executor per call,
  an asyncio lock around each append, one transaction and one fsync per append), loaded
  from git beside the current code;
- ``hand-off only``: the current store with ``max_group=1`` (dedicated writer thread, one
  commit per append): the hand-off's share of the gain;
- ``group commit``: the current store as opened by default;
- ``statements alone`` (1 writer only): the current append's statements (encoding
  included) run on the calling thread, without any hand-off: the floor of the hop.

The table shows median appends/s over rounds and each variant's ratio to ``before`` (the
median of per-round ratios). Results also go to ``bench/results/sqlite_writes.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cqrskit.messages import DomainEvent, Metadata
from cqrskit.store import NO_STREAM, EventRegistry, StreamAppend
from cqrskit.store._sqlite_writer import write_append
from cqrskit.store.sqlite import SqliteEventStore

RESULTS = Path(__file__).parent / "results" / "sqlite_writes.json"
ROOT = Path(__file__).resolve().parent.parent
BEFORE_REV = "b2feb0d"
WRITERS = (1, 4, 16, 64)


class LineAdded(DomainEvent):
    """A typical small event (the shape bench_event_store.py appends)."""

    event_type = "bench.LineAdded"
    order_id: str
    sku: str
    quantity: int
    price_cents: int


REGISTRY = EventRegistry([LineAdded])
_ROOT_METADATA = Metadata(user_id="bench-user")
EVENTS = [
    LineAdded(
        order_id=f"order-{n // 10}",
        sku=f"SKU-{n % 97:05d}",
        quantity=1 + n % 5,
        price_cents=199 + n,
        metadata=_ROOT_METADATA.caused(),
    )
    for n in range(100)
]


class _Store(Protocol):
    async def append(self, stream_id: str, events: Any, expected_version: int = ...) -> Any: ...
    async def close(self) -> None: ...


def load_before(rev: str) -> type[Any] | None:
    """The SqliteEventStore class as it was at ``rev``, with the ThreadConnection of then,
    imported from git under private module names; None when git cannot show it."""

    def source(path: str) -> str | None:
        try:
            return subprocess.run(
                ["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True
            ).stdout.decode()
        except (OSError, subprocess.CalledProcessError):
            return None

    connection, store = source("src/cqrskit/_sqlite.py"), source("src/cqrskit/store/sqlite.py")
    if connection is None or store is None:
        return None
    modules: dict[str, types.ModuleType] = {}
    for name, text in (("_bench_before_sqlite", connection), ("_bench_before_store", store)):
        text = text.replace("from cqrskit._sqlite import", "from _bench_before_sqlite import")
        spec = importlib.util.spec_from_loader(name, loader=None)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        exec(compile(text, f"{rev}:{name}", "exec"), module.__dict__)
        modules[name] = module
    cls: type[Any] = modules["_bench_before_store"].SqliteEventStore
    return cls


async def appends(store: _Store, writers: int, total: int) -> None:
    """``writers`` tasks append ``total`` single events between them, each to its own
    stream at the version it knows."""

    async def writer() -> None:
        stream = f"s-{uuid.uuid4().hex}"
        version = NO_STREAM
        for n in range(total // writers):
            version = (await store.append(stream, [EVENTS[n % 100]], version)).version

    await asyncio.gather(*(writer() for _ in range(writers)))


def statements_alone(path: Path, total: int) -> float:
    """Seconds for ``total`` appends by the current append path on this thread: encoding,
    BEGIN IMMEDIATE, the append's statements, COMMIT (fsync). No hop, no event loop."""
    db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    # The store's own encoding and checks (what append_many does before the hop).
    encoder = SqliteEventStore.__new__(SqliteEventStore)
    encoder.registry = REGISTRY
    stream = f"a-{uuid.uuid4().hex}"
    started = time.perf_counter()
    for n in range(total):
        encoded = encoder._encode([StreamAppend(stream, [EVENTS[n % 100]], n)])
        now = datetime.now(UTC).isoformat()
        db.execute("BEGIN IMMEDIATE")
        write_append(db, encoded, [stream], None, now)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


async def main(rounds: int, total: int, directory: Path) -> dict[str, Any]:
    before_cls = load_before(BEFORE_REV)
    openers: dict[str, Callable[[Path], Awaitable[_Store]]] = {}
    if before_cls is not None:
        openers["before"] = lambda p: before_cls.open(p, REGISTRY)
    else:
        print(f"git cannot show {BEFORE_REV}: no 'before' column", file=sys.stderr)
    openers["hand-off only"] = lambda p: SqliteEventStore.open(p, REGISTRY, max_group=1)
    openers["group commit"] = lambda p: SqliteEventStore.open(p, REGISTRY)
    # One file per variant, so that every table grows alike.
    stores = {
        name: await open_(directory / f"{n}.db") for n, (name, open_) in enumerate(openers.items())
    }
    floor_path = directory / "floor.db"
    await (await SqliteEventStore.open(floor_path, REGISTRY)).close()
    results: dict[int, dict[str, list[float]]] = {w: {} for w in WRITERS}
    groups: dict[int, dict[str, list[float]]] = {w: {} for w in WRITERS}
    try:
        for round_ in range(rounds):
            for writers in WRITERS:
                names = list(stores)
                # Rotate the order every round: no variant always runs first.
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    store = stores[name]
                    before = store.write_stats if isinstance(store, SqliteEventStore) else None
                    started = time.perf_counter()
                    await appends(store, writers, total)
                    rate = total // writers * writers / (time.perf_counter() - started)
                    results[writers].setdefault(name, []).append(rate)
                    if isinstance(store, SqliteEventStore) and before is not None:
                        after = store.write_stats
                        per_commit = (after.appends - before.appends) / (
                            after.commits - before.commits
                        )
                        groups[writers].setdefault(name, []).append(per_commit)
                if writers == 1:
                    rate = total / statements_alone(floor_path, total)
                    results[writers].setdefault("statements alone", []).append(rate)
            print(f"round {round_ + 1}/{rounds} done", file=sys.stderr)
        stats = {
            name: store.write_stats
            for name, store in stores.items()
            if isinstance(store, SqliteEventStore)
        }
    finally:
        for store in stores.values():
            await store.close()
    return report(results, groups, stats, rounds, total)


def report(
    results: dict[int, dict[str, list[float]]],
    groups: dict[int, dict[str, list[float]]],
    stats: dict[str, Any],
    rounds: int,
    total: int,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for writers, by_variant in results.items():
        base = by_variant.get("before")
        for name, rates in by_variant.items():
            ratio = (
                statistics.median(r / b for r, b in zip(rates, base, strict=True))
                if base is not None
                else None
            )
            rows.append(
                {
                    "writers": writers,
                    "variant": name,
                    "appends_per_s": round(statistics.median(rates)),
                    "ratio_to_before": None if ratio is None else round(ratio, 3),
                    "appends_per_commit": (
                        round(statistics.median(groups[writers][name]), 1)
                        if name in groups[writers]
                        else None
                    ),
                    "rounds": [round(r) for r in rates],
                }
            )
    header = (
        f"{'writers':>7}  {'variant':<18} {'appends/s':>10} {'x before':>9} {'appends/commit':>15}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        shown = f"{row['ratio_to_before']:>9.2f}" if row["ratio_to_before"] else f"{'':>9}"
        group = row["appends_per_commit"]
        print(
            f"{row['writers']:>7}  {row['variant']:<18} {row['appends_per_s']:>10,} {shown} "
            f"{group if group is not None else '':>15}"
        )
    return {
        "benchmark": "sqlite_writes",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "before": BEFORE_REV,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "load_average_1m": os.getloadavg()[0],
        },
        "rounds": rounds,
        "appends_per_slice": total,
        "statistic": (
            "median appends/s over rounds; ratio: median of per-round ratios; "
            "appends_per_commit: median over rounds (the group size)"
        ),
        "results": rows,
        "write_stats": {
            name: {"appends": s.appends, "commits": s.commits, "largest_group": s.largest_group}
            for name, s in stats.items()
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--appends", type=int, default=640, help="appends per slice")
    parser.add_argument("--dir", type=Path, help="where the files go (default: a temp dir)")
    parser.add_argument("--no-json", action="store_true", help="do not write the results file")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-sqlite-", dir=args.dir))
    try:
        load = os.getloadavg()[0]
        result = asyncio.run(main(args.rounds, args.appends, directory))
        result["machine"]["load_average_1m"] = {"before": load, "after": os.getloadavg()[0]}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if not args.no_json:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {RESULTS}", file=sys.stderr)
