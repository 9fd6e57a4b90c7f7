"""Read-your-writes: append, then ``wait_for`` returns as soon as the projection has it.

The latency is printed (run with ``-s`` to see it) but only asserted generously: tests never
assert on speed. Waiters on a *second* store handle prove the cross-process path
(PostgreSQL LISTEN/NOTIFY, Redis pub/sub) rather than the in-process wake-up.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cqrskit.consistency import ConsistencyTimeout, wait_for
from cqrskit.projection import ProjectionRunner, ProjectionState
from cqrskit.projection.testing import (
    MemoryHarness,
    ReadModelHarness,
    RedisHarness,
    SqlHarness,
    Ticked,
    eventually,
    tick_registry,
)
from cqrskit.readstore import (
    MemoryReadStore,
    RedisReadStore,
    SqlReadStore,
    open_redis_read_store,
    open_sql_read_store,
)
from cqrskit.store import EventStore, Position, open_event_store

ROUNDS = 20


async def _measure(
    events: EventStore, harness: ReadModelHarness[Any], waiter: Any, label: str
) -> list[float]:
    runner = ProjectionRunner(events, registry=CollectorRegistry(), idle_wait=5.0)
    runner.add(harness.tally(), harness.store)
    stream = f"ryw-{uuid.uuid4().hex[:8]}"
    latencies = []
    async with runner:
        await eventually(lambda: runner.status("tally").state is ProjectionState.LIVE)
        for i in range(ROUNDS):
            started = time.perf_counter()
            token = str((await events.append(stream, [Ticked()])).position)
            result = await wait_for(waiter, "tally", token, timeout=5.0)
            latencies.append(time.perf_counter() - started)
            assert result.reached, result
            assert (await harness.counts())[stream] == i + 1
    median, worst = statistics.median(latencies), max(latencies)
    print(f"\nread-your-writes {label}: median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms")
    # Generous on purpose: a loaded CI machine must not fail this; the goal is < 50 ms.
    assert median < 0.5
    return latencies


async def test_memory(tmp_path: Path) -> None:
    events = await open_event_store("memory://", tick_registry())
    harness = MemoryHarness(MemoryReadStore())
    await _measure(events, harness, harness.store, "memory")


async def test_sqlite(tmp_path: Path) -> None:
    events = await open_event_store(f"sqlite:///{tmp_path}/events.db", tick_registry())
    store: SqlReadStore = await open_sql_read_store(f"sqlite:///{tmp_path}/read.db")
    try:
        await _measure(events, SqlHarness(store), store, "sqlite")
    finally:
        await store.close()
        await events.close()


@pytest.fixture
async def pg_events(postgres_url: str, pg_schema: str) -> AsyncIterator[EventStore]:
    events = await open_event_store(f"{postgres_url}?schema={pg_schema}", tick_registry())
    yield events
    await events.close()


@pytest.mark.postgres
async def test_postgres_across_store_handles(
    pg_events: EventStore, pg_read_store: SqlReadStore, postgres_url: str, pg_schema: str
) -> None:
    # The waiter's store is another handle: it only hears of commits through NOTIFY.
    waiter: SqlReadStore = await open_sql_read_store(f"{postgres_url}?schema={pg_schema}")
    try:
        await _measure(pg_events, SqlHarness(pg_read_store), waiter, "postgresql (NOTIFY)")
    finally:
        await waiter.close()


@pytest.mark.postgres
async def test_postgres_in_process(pg_events: EventStore, pg_read_store: SqlReadStore) -> None:
    await _measure(pg_events, SqlHarness(pg_read_store), pg_read_store, "postgresql")


@pytest.mark.redis
async def test_redis_across_store_handles(
    redis_read_store: RedisReadStore, redis_url: str, tmp_path: Path
) -> None:
    events = await open_event_store(f"sqlite:///{tmp_path}/events.db", tick_registry())
    waiter: RedisReadStore = await open_redis_read_store(
        f"{redis_url}?prefix={redis_read_store.prefix}"
    )
    try:
        await _measure(events, RedisHarness(redis_read_store), waiter, "redis (pub/sub)")
    finally:
        await waiter.close()
        await events.close()


async def test_timeout_is_reported_not_swallowed(tmp_path: Path) -> None:
    store: SqlReadStore = await open_sql_read_store(f"sqlite:///{tmp_path}/read.db")
    try:
        harness = SqlHarness(store)
        projection = harness.tally()
        await store.prepare(projection, projection.setup)
        started = time.perf_counter()
        result = await wait_for(store, "tally", "42", timeout=0.1)
        assert 0.1 <= time.perf_counter() - started < 2
        assert (result.reached, result.checkpoint, result.target) == (
            False,
            Position(0, 0),
            Position(0, 42),
        )
        assert not result
        with pytest.raises(ConsistencyTimeout, match="not yet at 42"):
            result.raise_if_timed_out()
        with pytest.raises(ValueError, match="not a consistency token"):
            await wait_for(store, "tally", "yesterday", timeout=0.1)
    finally:
        await store.close()
