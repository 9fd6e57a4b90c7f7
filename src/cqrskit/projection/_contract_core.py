"""The projection contract's core: catching up, going live and restarting with every event
applied exactly once; the checkpoint guard; read-your-writes and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from cqrskit.projection._contract_kit import (
    Ignored,
    Poisoned,
    ReadModelHarness,
    Ticked,
    _ContractBase,
    _sample,
    _streams,
    append_ticks,
    eventually,
)
from cqrskit.projection.base import Projection, ProjectionState
from cqrskit.readstore.base import CheckpointConflict, ReadStore
from cqrskit.store.base import START, EventStore, Position, RecordedEvent


class _CoreTests(_ContractBase):
    """Exactly-once catch-up, live following and restarts; read-your-writes; metrics."""

    # -- catching up and going live ---------------------------------------------------------

    async def test_catches_up_then_follows_live(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(5)
        await append_ticks(events, streams, 6)
        runner = self.runner(events)
        runner.add(harness.tally(), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")
            assert await harness.counts() == dict.fromkeys(streams, 6)
            await eventually(lambda: runner.status("tally").state is ProjectionState.LIVE)
            token = await append_ticks(events, streams[:2], 1)
            assert (await runner.wait_for("tally", str(token), timeout=10)).reached
            assert await harness.counts() == {
                **dict.fromkeys(streams, 6),
                **dict.fromkeys(streams[:2], 7),
            }
            assert await harness.store.live_checkpoint("tally") == token
            await eventually(lambda: runner.status("tally").checkpoint == token)
            status = runner.status("tally")
            assert (status.events_behind, status.parked, status.last_error) == (0, 0, None)
        assert runner.status("tally").state is ProjectionState.STOPPED

    async def test_restart_resumes_from_checkpoint_without_double_application(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(3)
        await append_ticks(events, streams, 5)
        for round_ in range(3):
            runner = self.runner(events)
            runner.add(harness.tally(), harness.store)
            async with runner:
                await self.caught_up(runner, events, "tally")
            await append_ticks(events, streams, 2)
            assert await harness.counts() == dict.fromkeys(streams, 5 + 2 * round_)

    async def test_unhandled_events_move_the_checkpoint(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(2)
        await append_ticks(events, streams, 2)
        for _ in range(self.batch_size * 2 + 1):
            await events.append(streams[0], [Ignored()])
        runner = self.runner(events)
        runner.add(harness.tally(), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")
        assert await harness.store.live_checkpoint("tally") == await events.head()
        assert await harness.counts() == dict.fromkeys(streams, 2)

    async def test_checkpoint_guard_rejects_a_second_writer(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(1)
        await append_ticks(events, streams, 2)
        projection = harness.tally()
        store = harness.store
        await store.prepare(projection, projection.setup)
        recorded = await events.read_all(START, 10)
        await _commit_batch(store, projection, START, recorded[:1])
        with pytest.raises(CheckpointConflict):
            await _commit_batch(store, projection, START, recorded[:1])
        assert await harness.counts() == {streams[0]: 1}
        assert await store.live_checkpoint("tally") == recorded[0].position

    async def test_a_checkpoint_only_commit_is_guarded_too(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        # A batch of only events the projection does not handle writes nothing but its
        # checkpoint (on PostgreSQL one statement, without BEGIN and COMMIT).
        streams = _streams(1)
        await append_ticks(events, streams, 2)
        projection = harness.tally()
        store = harness.store
        await store.prepare(projection, projection.setup)
        first, second = await events.read_all(START, 10)
        async with store.transaction(projection, START) as tx:
            tx.advance_to(first.position)
        with pytest.raises(CheckpointConflict):
            async with store.transaction(projection, START) as tx:
                tx.advance_to(second.position)
        assert await store.live_checkpoint("tally") == first.position
        assert await harness.counts() == {}

    async def test_exception_in_handler_rolls_back_the_transaction(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(1)
        await append_ticks(events, streams, 1)
        await events.append(streams[0], [Ticked(label="bad")])
        projection = harness.tally(poison={"bad"})
        store = harness.store
        await store.prepare(projection, projection.setup)
        recorded = await events.read_all(START, 10)
        with pytest.raises(Poisoned):
            await _commit_batch(store, projection, START, recorded)
        assert await harness.counts() == {}
        assert await store.live_checkpoint("tally") == START

    # -- read-your-writes and metrics -----------------------------------------------------

    async def test_wait_for_times_out_with_a_typed_result(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        runner = self.runner(events)
        runner.add(harness.tally(), harness.store)
        async with runner:
            await eventually(lambda: runner.status("tally").state is ProjectionState.LIVE)
            result = await runner.wait_for("tally", Position(0, 10_000), timeout=0.05)
        assert not result.reached
        assert result.elapsed >= 0.05
        assert result.target == Position(0, 10_000)
        from cqrskit.consistency import ConsistencyTimeout

        with pytest.raises(ConsistencyTimeout):
            result.raise_if_timed_out()

    async def test_wait_for_issued_before_the_projection_exists(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        # No events: only preparing the projection can wake the waiter.
        runner = self.runner(events)
        runner.add(harness.tally(), harness.store)
        waiting = asyncio.create_task(runner.wait_for("tally", START, timeout=10))
        await asyncio.sleep(0.05)
        async with runner:
            result = await waiting
        assert result.reached, result
        # Woken by the commit that created the checkpoint, not by the timeout running out.
        assert result.elapsed < 5, result

    async def test_metrics_in_the_runners_registry(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(2)
        await append_ticks(events, streams, 5)
        runner = self.runner(events)
        runner.add(harness.tally(), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")
            # The metrics follow the commit that woke wait_for.
            await eventually(
                lambda: _sample(runner, "cqrskit_projection_events_processed_total") == 10.0
            )
            assert (_sample(runner, "cqrskit_projection_batch_seconds_count") or 0) >= 2
            assert _sample(runner, "cqrskit_projection_lag_events") == 0.0
            assert _sample(runner, "cqrskit_projection_parked_events") == 0.0


async def _commit_batch(
    store: ReadStore[Any],
    projection: Projection[Any],
    expected: Position,
    batch: Sequence[RecordedEvent],
) -> None:
    async with store.transaction(projection, expected) as tx:
        await projection.handle(batch, tx.uow)
        tx.advance_to(batch[-1].position)
