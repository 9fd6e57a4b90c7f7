"""The projection contract for stored events that can no longer be decoded: they fail on
their own, by the projection's policy, and never hold back the events around them."""

from __future__ import annotations

from typing import Any

import pytest

from cqrskit.errors import EventDecodeError, UnknownEventType
from cqrskit.projection._contract_kit import (
    Ignored,
    ReadModelHarness,
    Ticked,
    _ContractBase,
    _streams,
    append_ticks,
    eventually,
    rewrite_stored_event,
)
from cqrskit.projection.base import FailurePolicy, ProjectionState
from cqrskit.store.base import EventStore, Position
from cqrskit.store.memory import MemoryEventStore


class _Retyped(Ticked):
    """A tick stored under a name no registry knows, until a test registers this class."""

    event_type = "projection-contract.Retyped"


def _memory_events(events: EventStore) -> MemoryEventStore:
    if not isinstance(events, MemoryEventStore):
        pytest.skip("writes undecodable rows through a MemoryEventStore's storage")
    return events


class _UndecodableEventTests(_ContractBase):
    """Events that cannot be decoded: parked or faulted on, or left alone if not consumed."""

    # -- events that cannot be decoded ------------------------------------------------------

    async def test_undecodable_event_is_parked_and_the_others_go_on(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        memory = _memory_events(events)
        streams = _streams(3)
        await append_ticks(events, streams, 3)
        # Position 10: the third event of the second page (batches of 7), with events
        # of the same page before and after it, and pages after that one.
        bad = (await events.append(streams[1], [Ticked(label="bad")])).position
        await append_ticks(events, streams, 3)
        rewrite_stored_event(memory, bad, data='{"label": 12}')
        policy = FailurePolicy(retries=1, backoff=0.001, then="park")
        runner = self.runner(events)
        runner.add(harness.tally(policy=policy), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")
            assert await harness.counts() == dict.fromkeys(streams, 6)
            [parked] = await runner.parked("tally")
            assert (parked.id, parked.stream_id, parked.attempts) == (str(bad), streams[1], 2)
            assert parked.undecodable
            assert (parked.event_type, parked.schema_version) == (Ticked.event_type, 1)
            assert parked.data == '{"label": 12}'
            assert parked.metadata is not None
            assert "message_id" in parked.metadata
            assert "EventDecodeError" in parked.error
            assert "label" in parked.error
            assert runner.status("tally").parked == 1
            assert await harness.store.live_checkpoint("tally") == await events.head()

    async def test_undecodable_event_faults_a_stop_projection_after_the_batch_before_it(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        memory = _memory_events(events)
        streams = _streams(2)
        await append_ticks(events, streams, 2)
        bad = (await events.append(streams[0], [Ticked(label="bad")])).position
        await append_ticks(events, streams, 2)
        rewrite_stored_event(memory, bad, data='{"label": null}')
        runner = self.runner(events, batch_size=100)
        runner.add(harness.tally(policy=FailurePolicy(retries=1, backoff=0.001)), harness.store)
        async with runner:
            await eventually(lambda: runner.status("tally").state is ProjectionState.FAULTED)
            status = runner.status("tally")
            assert status.last_error is not None
            assert "EventDecodeError" in status.last_error
            assert "label" in status.last_error
            assert str(bad) in status.last_error
            # The events before it, read in the same page, are committed.
            assert status.checkpoint == Position(bad.commit, bad.seq - 1)
            assert await harness.store.live_checkpoint("tally") == status.checkpoint
            assert await harness.counts() == dict.fromkeys(streams, 2)
            assert await runner.parked("tally") == []
            # Fixed in the store (a data migration): resuming reads it again.
            rewrite_stored_event(memory, bad, data='{"label": "fixed"}')
            runner.resume("tally")
            await self.caught_up(runner, events, "tally")
        assert await harness.counts() == {streams[0]: 5, streams[1]: 4}

    async def test_undecodable_event_of_a_type_not_consumed_leaves_the_projection_alone(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        memory = _memory_events(events)
        streams = _streams(2)
        await append_ticks(events, streams, 2)
        ignored = (await events.append(streams[0], [Ignored()])).position
        await append_ticks(events, streams, 2)
        rewrite_stored_event(memory, ignored, data='{"unexpected": 1}')
        runner = self.runner(events)
        runner.add(harness.tally(policy=FailurePolicy(retries=0, then="park")), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")
            assert await harness.counts() == dict.fromkeys(streams, 4)
            assert await runner.parked("tally") == []
            assert runner.status("tally").last_error is None

    async def test_parked_event_of_an_unknown_type_is_applied_once_registered(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        memory = _memory_events(events)
        streams = _streams(2)
        await append_ticks(events, streams, 2)
        retyped = (await events.append(streams[1], [Ticked(label="renamed")])).position
        await append_ticks(events, streams, 2)
        # A type the registry does not know: whether the tally consumes it cannot be
        # known, so it fails (and is parked) rather than being passed over.
        rewrite_stored_event(memory, retyped, event_type=_Retyped.event_type)
        policy = FailurePolicy(retries=1, backoff=0.001, then="park")
        runner = self.runner(events)
        runner.add(harness.tally(policy=policy), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")
            assert await harness.counts() == dict.fromkeys(streams, 4)
            [parked] = await runner.parked("tally")
            assert (parked.id, parked.event_type) == (str(retyped), _Retyped.event_type)
            assert "UnknownStoredEventType" in parked.error
            await eventually(lambda: runner.status("tally").state is ProjectionState.LIVE)
            # Not fixed yet: it stays parked, with the new error and one more attempt.
            with pytest.raises(EventDecodeError) as caught:
                await runner.retry_parked("tally", parked.id)
            assert isinstance(caught.value, UnknownEventType)
            assert caught.value.stream_id == streams[1]
            [still] = await runner.parked("tally")
            assert (still.id, still.attempts, still.undecodable) == (parked.id, 3, True)
            assert "UnknownStoredEventType" in still.error
            # The fix is deployed: the type is registered again.
            memory.registry.register(_Retyped)
            await runner.retry_parked("tally", parked.id)
            assert await runner.parked("tally") == []
            assert runner.status("tally").parked == 0
        assert await harness.counts() == {streams[0]: 4, streams[1]: 5}
