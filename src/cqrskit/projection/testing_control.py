"""The contract of control records: published statuses, rebuild requests, lineage.

:class:`ControlContract` extends :class:`~cqrskit.projection.testing.ProjectionContract`;
bind it instead, once per read store, with the same ``harness`` fixture. Needs the
``testing`` extra.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from cqrskit.projection.base import ProjectionState, RebuildProgress
from cqrskit.projection.control import published_statuses, request_rebuild
from cqrskit.projection.testing import (
    ProjectionContract,
    ReadModelHarness,
    append_ticks,
    eventually,
)
from cqrskit.store.base import EventStore

__all__ = ["ControlContract"]


def _streams(n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"c-{run}-{i}" for i in range(n)]


class ControlContract(ProjectionContract):
    """What runners and operators do through a read store's control records."""

    async def test_control_records_round_trip(self, harness: ReadModelHarness[Any]) -> None:
        store = harness.store
        assert await store.controls("note") == {}
        await store.put_control("tally", "note", "one")
        await store.put_control("tally", "note", "two")
        await store.put_control("other", "note", "three")
        records = await store.controls("note")
        assert {k: v for k, (v, _) in records.items()} == {"tally": "two", "other": "three"}
        taken = await asyncio.gather(*(store.take_control("tally", "note") for _ in range(5)))
        assert sorted(t for t in taken if t is not None) == ["two"]
        assert await store.take_control("tally", "note") is None
        assert set(await store.controls("note")) == {"other"}

    async def test_the_active_runner_publishes_statuses(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        await append_ticks(events, _streams(3), 2)
        runner = self.runner(events, holder="test-holder", status_interval=0.05)
        runner.add(harness.tally(), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")

            async def published_live() -> bool:
                status = (await published_statuses(harness.store)).get("tally")
                return status is not None and status.state is ProjectionState.LIVE

            await _until(published_live)
            status = (await published_statuses(harness.store))["tally"]
            assert (status.holder, status.version, status.parked) == ("test-holder", 1, 0)
            assert status.checkpoint == str(await events.head())
            assert status.age < 5
        stopped = (await published_statuses(harness.store))["tally"]
        assert stopped.state is ProjectionState.STOPPED

    async def test_a_requested_rebuild_switches_without_downtime_and_survives_restart(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(4)
        await append_ticks(events, streams, 5)
        runner = self.runner(events, status_interval=0.05, control_interval=0.0, idle_wait=0.1)
        runner.add(harness.tally(), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")
            await request_rebuild(harness.store, "tally")
            await eventually(lambda: runner.status("tally").version == 2, timeout=10)
            token = await append_ticks(events, streams[:1], 1)
            assert (await runner.wait_for("tally", token, timeout=10)).reached
            await eventually(lambda: runner.status("tally").state is ProjectionState.LIVE)
            assert await harness.store.live_version("tally") == 2
            assert await harness.counts() == {**dict.fromkeys(streams, 5), streams[0]: 6}
            rebuild = runner.status("tally").rebuild
            assert rebuild is not None
            assert rebuild.finished
            assert rebuild.version == 2

            async def old_version_dropped() -> bool:
                return await harness.store.checkpoint("tally", 1) is None

            await _until(old_version_dropped)
        # The same code, restarted, uses the rebuilt version: no second rebuild.
        again = self.runner(events)
        again.add(harness.tally(), harness.store)
        async with again:
            await eventually(lambda: again.status("tally").state is ProjectionState.LIVE)
            assert again.status("tally").version == 2
            assert await harness.store.live_version("tally") == 2
        # New code numbered 2 is not mistaken for the rebuild of code 1 stored as v2.
        newer = self.runner(events)
        newer.add(harness.tally(version=2), harness.store)
        async with newer:
            await eventually(lambda: newer.status("tally").version == 3, timeout=10)
            await eventually(lambda: newer.status("tally").state is ProjectionState.LIVE)
            assert await harness.store.live_version("tally") == 3
            assert await harness.counts() == {**dict.fromkeys(streams, 5), streams[0]: 6}

    async def test_progress_follows_a_rebuild_from_right_after_add(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(5)
        await append_ticks(events, streams, 10)
        async with self.runner(events) as first:
            first.add(harness.tally(), harness.store)
            reports = [r async for r in first.progress("tally")]
            _assert_finished(reports, total=50, version=1)
        async with self.runner(events) as second:
            second.add(harness.tally(version=2), harness.store, previous=harness.tally())
            reports = [r async for r in second.progress("tally")]
            _assert_finished(reports, total=50, version=2)


def _assert_finished(reports: list[RebuildProgress], total: int, version: int) -> None:
    assert reports, "no progress report for a build about to run"
    assert reports[-1].finished
    assert (reports[-1].done, reports[-1].total, reports[-1].version) == (total, total, version)
    assert [r.done for r in reports] == sorted(r.done for r in reports)


async def _until(condition: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"{condition.__name__} did not hold within {timeout}s")
        await asyncio.sleep(0.02)
