"""Rebuild without downtime, under load: writes go on, queries never fail and never see a
half-built model, and the final model equals a full replay."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cqrskit.projection import ProjectionRunner, ProjectionState, RebuildProgress
from cqrskit.projection.testing import (
    ReadModelHarness,
    RedisHarness,
    SqlHarness,
    Ticked,
    eventually,
    tick_registry,
)
from cqrskit.readstore import RedisReadStore, SqlReadStore
from cqrskit.store import EventStore, open_event_store

from .test_processes import expected_counts, write_events


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def harness(request: pytest.FixtureRequest) -> ReadModelHarness[Any]:
    if request.param == "sqlite":
        store: SqlReadStore = request.getfixturevalue("sqlite_read_store")
        return SqlHarness(store)
    if request.param == "postgresql":
        return SqlHarness(request.getfixturevalue("pg_read_store"))
    redis_store: RedisReadStore = request.getfixturevalue("redis_read_store")
    return RedisHarness(redis_store)


@pytest.mark.parametrize("load", ["steady", "batches never come back short"])
async def test_rebuild_under_writes_and_reads(
    harness: ReadModelHarness[Any], tmp_path: Path, load: str
) -> None:
    events: EventStore = await open_event_store(f"sqlite:///{tmp_path}/ev.db", tick_registry())
    streams = [f"rebuild-{i}" for i in range(30)]
    await write_events(events, streams, 5)  # 1,505 events
    options: dict[str, Any] = {"batch_size": 20, "drop_delay": 0.2, "idle_wait": 1.0}

    first = ProjectionRunner(events, registry=CollectorRegistry(), **options)
    first.add(harness.tally(version=1), harness.store)
    async with first:
        assert (await first.wait_for("tally", await events.head(), timeout=30)).reached

    runner = ProjectionRunner(events, registry=CollectorRegistry(), **options)
    runner.add(harness.tally(version=2), harness.store, previous=harness.tally(version=1))
    switched = asyncio.Event()
    totals: list[int] = []
    states: list[ProjectionState] = []

    async def write() -> None:
        n = 0
        while not switched.is_set() or n % 50:
            if load == "steady":
                await events.append(streams[n % 3], [Ticked()])
            else:
                # More events per batch time than a batch holds.
                await events.append(streams[n % 3], [Ticked() for _ in range(30)])
                await asyncio.sleep(0.01)
            n += 1
            await asyncio.sleep(0.002)

    async def read() -> None:
        while not switched.is_set():
            states.append(runner.status("tally").state)
            # Any failure here (a missing table, a half-switched model) fails the test.
            totals.append(sum((await harness.counts()).values()))
            await asyncio.sleep(0)

    async def follow_progress() -> list[RebuildProgress]:
        return [report async for report in runner.progress("tally")]

    async with runner:
        progress = asyncio.create_task(follow_progress())
        tasks = [asyncio.create_task(write()), asyncio.create_task(read())]
        await eventually(lambda: runner.status("tally").state is ProjectionState.LIVE, 60)
        assert await harness.store.live_version("tally") == 2
        switched.set()
        await asyncio.gather(*tasks)
        reports = await progress
        assert (await runner.wait_for("tally", await events.head(), timeout=30)).reached
        model = await harness.counts()

        async def old_version_dropped() -> bool:
            return await harness.store.checkpoint("tally", 1) is None

        # Past drop_delay; dropping takes longer on a Redis database holding more keys
        # (it scans for the version's keys).
        await eventually(old_version_dropped, 10, "old version dropped")

    assert ProjectionState.REBUILDING in states, "no query ran during the rebuild"
    assert totals[0] >= 1500
    # Never a half-built model: the total a reader sees never goes backwards.
    assert totals == sorted(totals)
    assert model == await expected_counts(events)
    assert reports, "no progress reported"
    assert reports[-1].finished
    assert reports[-1].done >= 1505
    assert all(r.done <= r.total for r in reports)
    await events.close()
