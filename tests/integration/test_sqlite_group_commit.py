"""SQLite group commit: concurrent appends share commits, each still all or nothing."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cqrskit.errors import ConcurrencyError
from cqrskit.store import ANY, NO_STREAM, START, AppendResult, Idempotency, StreamAppend
from cqrskit.store._common import dump_result
from cqrskit.store.sqlite import SqliteEventStore
from cqrskit.testing import Noted, contract_registry

TASKS = 64
APPENDS_PER_TASK = 50
HOT_STREAMS = 6  # shared by every task: their expected versions go stale, so conflicts happen
KEYS = 40  # idempotency keys shared by every task: most uses of one are repeats


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
    opened = await SqliteEventStore.open(tmp_path / "events.db", contract_registry())
    yield opened
    await opened.close()


@dataclass
class Outcomes:
    """What each append was asked to write and what became of it."""

    written: list[tuple[dict[str, list[str]], AppendResult]] = field(default_factory=list)
    conflicts: list[list[str]] = field(default_factory=list)
    replays: list[tuple[str, list[str], AppendResult]] = field(default_factory=list)
    originals: dict[str, AppendResult] = field(default_factory=dict)


def _notes(texts: list[str]) -> list[Noted]:
    return [Noted(text=t) for t in texts]


async def _one_task(store: SqliteEventStore, task: int, outcomes: Outcomes) -> None:
    rng = random.Random(task)
    own = f"own-{task}"
    own_version = NO_STREAM
    for n in range(APPENDS_PER_TASK):
        tag = f"{task}.{n}"
        kind = rng.choice(["own", "hot", "hot", "multi", "keyed"])
        hot = f"hot-{rng.randrange(HOT_STREAMS)}"
        plan: dict[str, list[str]]
        key: str | None = None
        if kind == "own":
            plan = {own: [f"{tag}.{i}" for i in range(rng.randint(1, 3))]}
            appends = [StreamAppend(own, _notes(plan[own]), own_version)]
        elif kind == "hot":
            # Read, then append at what was read: another task may get there first.
            version = await store.stream_version(hot)
            plan = {hot: [tag]}
            appends = [StreamAppend(hot, _notes(plan[hot]), version)]
        elif kind == "multi":
            version = await store.stream_version(hot)
            plan = {own: [f"{tag}.own"], hot: [f"{tag}.hot.0", f"{tag}.hot.1"]}
            appends = [
                StreamAppend(own, _notes(plan[own]), own_version),
                StreamAppend(hot, _notes(plan[hot]), version),
            ]
        else:
            key = f"key-{rng.randrange(KEYS)}"
            plan = {f"keyed-{key}": [tag]}
            appends = [StreamAppend(f"keyed-{key}", _notes(plan[f"keyed-{key}"]), ANY)]
        texts = [t for events in plan.values() for t in events]
        try:
            result = await store.append_many(
                appends, idempotency=Idempotency(key, tag) if key else None
            )
        except ConcurrencyError:
            outcomes.conflicts.append(texts)
            continue
        if own in result.versions:
            own_version = result.versions[own]
        if result.replayed:
            assert key is not None
            outcomes.replays.append((key, texts, result))
        else:
            if key is not None:
                outcomes.originals[key] = result
            outcomes.written.append((plan, result))


async def test_concurrent_appends_each_write_exactly_once_or_not_at_all(
    store: SqliteEventStore,
) -> None:
    outcomes = Outcomes()
    await asyncio.gather(*(_one_task(store, task, outcomes) for task in range(TASKS)))

    assert len(outcomes.written) + len(outcomes.conflicts) + len(outcomes.replays) == (
        TASKS * APPENDS_PER_TASK
    )
    assert outcomes.conflicts, "the hot streams should have produced conflicts"
    assert outcomes.replays, "the shared keys should have produced replays"
    recorded = await store.read_all(START, limit=1_000_000)
    # Gap-free global positions, every event once.
    assert [r.position.seq for r in recorded] == list(range(1, len(recorded) + 1))
    by_text = {str(getattr(r.event, "text", "")): r for r in recorded}
    assert len(by_text) == len(recorded)
    # Per-stream versions from 1, without gaps, in global order.
    versions: dict[str, list[int]] = {}
    for r in recorded:
        versions.setdefault(r.stream_id, []).append(r.version)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    # Every successful append: all its events, consecutive in its streams, ending at the
    # versions and position it reported.
    expected_texts: set[str] = set()
    for plan, result in outcomes.written:
        positions = []
        for stream, texts in plan.items():
            found = [by_text[t] for t in texts]
            assert [r.stream_id for r in found] == [stream] * len(texts)
            top = result.versions[stream]
            assert [r.version for r in found] == list(range(top - len(texts) + 1, top + 1))
            positions += [r.position for r in found]
            expected_texts.update(texts)
        assert result.position == max(positions)
    assert set(by_text) == expected_texts  # conflicts and replays wrote nothing
    for key, _texts, replay in outcomes.replays:
        original = outcomes.originals[key]
        assert (replay.position, replay.versions) == (original.position, original.versions)
    stats = store.write_stats
    assert stats.appends == TASKS * APPENDS_PER_TASK
    assert stats.commits < stats.appends  # concurrent appends shared commits
    assert stats.largest_group > 1


async def test_sequential_appends_commit_one_by_one(store: SqliteEventStore) -> None:
    for n in range(20):
        await store.append("alone", [Noted(text=str(n))], n)
    stats = store.write_stats
    assert (stats.appends, stats.commits, stats.largest_group) == (20, 20, 1)


async def _in_one_group(store: SqliteEventStore, calls: list[Awaitable[Any]]) -> list[Any]:
    """Run ``calls`` (appends) so that they all share one group: the writer thread is held
    busy until every one of them is queued."""
    loop = asyncio.get_running_loop()
    started, release = asyncio.Event(), threading.Event()

    def hold(db: sqlite3.Connection) -> None:
        loop.call_soon_threadsafe(started.set)
        release.wait(10)

    blocker = asyncio.ensure_future(store._writer.run(hold))
    await started.wait()  # the writer thread is busy in it
    tasks = [asyncio.ensure_future(c) for c in calls]
    await asyncio.sleep(0)  # each task runs up to its hand-off: all are queued now
    assert store._writer._jobs.qsize() == len(calls)
    release.set()
    await blocker
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_failing_append_fails_alone_in_its_group(
    store: SqliteEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.append("a", [Noted(text="a1")], NO_STREAM)
    first = await store.append("keyed", [Noted(text="k1")], idempotency=Idempotency("k", "k"))
    before = store.write_stats

    # A failure after the append's rows are written: its savepoint must undo them.
    def dump_or_fail(result: AppendResult) -> str:
        if result.result_id == "explode":
            raise RuntimeError("injected failure after the rows were written")
        return dump_result(result)

    monkeypatch.setattr("cqrskit.store._sqlite_writer.dump_result", dump_or_fail)
    outcomes = await _in_one_group(
        store,
        [
            store.append("b", [Noted(text="b1")], NO_STREAM),
            store.append("a", [Noted(text="stale")], 5),  # a bad expected version
            store.append("keyed", [Noted(text="k2")], idempotency=Idempotency("k", "x")),
            store.append("e", [Noted(text="e1")], idempotency=Idempotency("boom", "explode")),
            store.append_many(
                [
                    StreamAppend("a", [Noted(text="a2")], 1),
                    StreamAppend("c", [Noted(text="c1")], NO_STREAM),
                ]
            ),
        ],
    )
    b, stale, replay, exploded, multi = outcomes
    assert isinstance(b, AppendResult)
    assert b.versions == {"b": 1}
    assert isinstance(stale, ConcurrencyError)
    assert (stale.stream_id, stale.expected, stale.actual) == ("a", 5, 1)
    assert isinstance(replay, AppendResult)
    assert replay.replayed
    assert replay.position == first.position
    assert isinstance(exploded, RuntimeError)
    assert isinstance(multi, AppendResult)
    assert multi.versions == {"a": 2, "c": 1}
    after = store.write_stats
    assert (after.appends - before.appends, after.commits - before.commits) == (5, 1)
    assert after.largest_group == 5
    recorded = await store.read_all(first.position)
    assert [(r.stream_id, getattr(r.event, "text", None)) for r in recorded] == [
        ("b", "b1"),
        ("a", "a2"),
        ("c", "c1"),
    ]
    assert [r.position.seq for r in recorded] == list(
        range(first.position.seq + 1, first.position.seq + 4)
    )
    assert await store.find_idempotent("boom") is None
    assert await store.stream_version("e") == 0


async def test_a_group_wakes_waiters(store: SqliteEventStore) -> None:
    head = await store.head()
    waiter = asyncio.ensure_future(store.wait_for_events(head, timeout=5))
    await asyncio.sleep(0.01)
    await _in_one_group(store, [store.append(f"s{n}", [Noted(text=str(n))]) for n in range(4)])
    assert await asyncio.wait_for(waiter, 1) is True


def _count_in_another_process(path: Path) -> int:
    """Events visible to a fresh connection in another process: what is on disk."""
    code = (
        "import sqlite3, sys; "
        "print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM events').fetchone()[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True
    )
    return int(done.stdout)


async def test_an_append_that_returned_is_visible_to_another_process(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    store = await SqliteEventStore.open(path, contract_registry())
    try:
        await store.append("lone", [Noted(text="one")])
        assert _count_in_another_process(path) == 1
        await asyncio.gather(*(store.append(f"s{n}", [Noted(text=str(n))]) for n in range(30)))
        assert store.write_stats.commits < store.write_stats.appends
        assert _count_in_another_process(path) == 31
    finally:
        await store.close()


async def test_appends_queued_before_close_are_written(tmp_path: Path) -> None:
    path = tmp_path / "closing.db"
    store = await SqliteEventStore.open(path, contract_registry())
    tasks = [asyncio.ensure_future(store.append(f"s{n}", [Noted(text=str(n))])) for n in range(20)]
    await asyncio.sleep(0)  # every append is handed to the writer
    await store.close()
    assert all(isinstance(t.result(), AppendResult) for t in tasks)
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 20
    finally:
        db.close()


async def test_max_group_bounds_the_groups(tmp_path: Path) -> None:
    store = await SqliteEventStore.open(tmp_path / "e.db", contract_registry(), max_group=4)
    try:
        await asyncio.gather(*(store.append(f"s{n}", [Noted(text=str(n))]) for n in range(40)))
        stats = store.write_stats
        assert stats.appends == 40
        assert 1 < stats.largest_group <= 4
        assert stats.commits >= 10
    finally:
        await store.close()
    with pytest.raises(ValueError, match="max_group"):
        await SqliteEventStore.open(tmp_path / "f.db", contract_registry(), max_group=0)
