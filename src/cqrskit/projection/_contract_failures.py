"""The projection contract's failure policies: faulting on a failing event, or parking it,
then retrying or discarding what was parked."""

from __future__ import annotations

from typing import Any

import pytest

from cqrskit.projection._contract_kit import (
    Poisoned,
    ReadModelHarness,
    Ticked,
    _ContractBase,
    _sample,
    _streams,
    append_ticks,
    eventually,
)
from cqrskit.projection.base import FailurePolicy, ProjectionState
from cqrskit.store.base import EventStore


class _FailurePolicyTests(_ContractBase):
    """The ``stop`` and ``park`` failure policies, and operations on parked events."""

    # -- failures ------------------------------------------------------------------------

    async def test_stop_policy_faults_with_the_batch_rolled_back_whole(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(2)
        await append_ticks(events, streams, 2)
        poison_at = (await events.append(streams[0], [Ticked(label="bad")])).position
        await append_ticks(events, streams, 2)
        poison = {"bad"}
        runner = self.runner(events, batch_size=100)
        runner.add(harness.tally(poison=poison), harness.store)
        async with runner:
            await eventually(lambda: runner.status("tally").state is ProjectionState.FAULTED)
            status = runner.status("tally")
            assert status.last_error is not None
            assert "poisoned label 'bad'" in status.last_error
            assert str(poison_at) in status.last_error
            # Everything before the poison event committed; nothing of it or after it.
            assert status.checkpoint is not None
            assert status.checkpoint < poison_at
            assert await harness.counts() == dict.fromkeys(streams, 2)
            assert _sample(runner, "cqrskit_projection_faults_total") == 1.0
            poison.clear()
            runner.resume("tally")
            await self.caught_up(runner, events, "tally")
        assert await harness.counts() == {streams[0]: 5, streams[1]: 4}

    async def test_park_policy_parks_and_goes_on_then_retry_succeeds(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(3)
        await append_ticks(events, streams, 3)
        bad = (await events.append(streams[1], [Ticked(label="bad")])).position
        await append_ticks(events, streams, 3)
        poison = {"bad"}
        policy = FailurePolicy(retries=2, backoff=0.001, then="park")
        runner = self.runner(events)
        runner.add(harness.tally(poison=poison, policy=policy), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")
            assert await harness.counts() == dict.fromkeys(streams, 6)
            parked = await runner.parked("tally")
            assert [(p.id, p.stream_id, p.attempts) for p in parked] == [(str(bad), streams[1], 3)]
            assert "poisoned label 'bad'" in parked[0].error
            assert runner.status("tally").parked == 1
            # The checkpoint can be read committed while the runner is still on its way
            # from that commit to saying it is live.
            await eventually(lambda: runner.status("tally").state is ProjectionState.LIVE)
            with pytest.raises(Poisoned):
                await runner.retry_parked("tally", parked[0].id)
            assert len(await runner.parked("tally")) == 1
            poison.clear()
            await runner.retry_parked("tally", parked[0].id)
            assert await runner.parked("tally") == []
            assert runner.status("tally").parked == 0
        assert await harness.counts() == {**dict.fromkeys(streams, 6), streams[1]: 7}

    async def test_discarded_parked_event_is_gone(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(1)
        await events.append(streams[0], [Ticked(label="bad"), Ticked(), Ticked(label="bad")])
        policy = FailurePolicy(retries=0, then="park")
        runner = self.runner(events)
        runner.add(harness.tally(poison={"bad"}, policy=policy), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")
            parked = await runner.parked("tally")
            assert len(parked) == 2
            await runner.discard_parked("tally", parked[0].id)
            assert [p.id for p in await runner.parked("tally")] == [parked[1].id]
        assert await harness.counts() == {streams[0]: 1}
