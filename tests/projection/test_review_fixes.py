"""Regression tests for reviewed bugs: racing parked-event retries, unknown parked ids."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cqrskit.projection import FailurePolicy, ProjectionRunner, ProjectionState
from cqrskit.projection.testing import (
    MemoryHarness,
    ReadModelHarness,
    SqlHarness,
    Ticked,
    eventually,
    tick_registry,
)
from cqrskit.readstore import MemoryReadStore, SqlReadStore
from cqrskit.store import MemoryEventStore, RecordedEvent


class GatedEvents(MemoryEventStore):
    """An event store whose ``read_stream`` can hold callers at a barrier.

    ``retry_parked`` reads the parked event's stream after checking that it is parked and
    before its transaction: holding two retries there makes both pass that check first.
    """

    gate: asyncio.Barrier | None = None

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), 5)
        return await super().read_stream(stream_id, from_version)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def harness(request: pytest.FixtureRequest) -> ReadModelHarness[Any]:
    """The contract harness on a memory, SQLite or PostgreSQL read store (closed after)."""
    if request.param == "memory":
        return MemoryHarness(MemoryReadStore())
    fixture = "sqlite_read_store" if request.param == "sqlite" else "pg_read_store"
    store: SqlReadStore = request.getfixturevalue(fixture)
    return SqlHarness(store)


def _parked_gauge(runner: ProjectionRunner) -> float | None:
    return runner.metrics.registry.get_sample_value(
        "cqrskit_projection_parked_events", {"projection": "tally"}
    )


async def _runner_with_a_parked_event(
    harness: ReadModelHarness[Any], events: MemoryEventStore, poison: set[str]
) -> ProjectionRunner:
    await events.append("acc-1", [Ticked(), Ticked(label="bad"), Ticked()])
    runner = ProjectionRunner(
        events, batch_size=10, idle_wait=0.05, lease_retry=0.05, registry=CollectorRegistry()
    )
    policy = FailurePolicy(retries=0, backoff=0.001, then="park")
    runner.add(harness.tally(poison=poison, policy=policy), harness.store)
    return runner


async def _settled(runner: ProjectionRunner, events: MemoryEventStore) -> None:
    assert (await runner.wait_for("tally", await events.head(), timeout=10)).reached
    await eventually(lambda: runner.status("tally").state is ProjectionState.LIVE)


# -- BUG 1: two concurrent retries of one parked event -----------------------------------


async def test_concurrent_retries_of_one_parked_event_apply_it_once(
    harness: ReadModelHarness[Any],
) -> None:
    events = GatedEvents(tick_registry())
    poison = {"bad"}
    runner = await _runner_with_a_parked_event(harness, events, poison)
    async with runner:
        await _settled(runner, events)
        (parked,) = await runner.parked("tally")
        assert await harness.counts() == {"acc-1": 2}
        assert runner.status("tally").parked == 1
        poison.clear()
        events.gate = asyncio.Barrier(2)
        results = await asyncio.gather(
            runner.retry_parked("tally", parked.id),
            runner.retry_parked("tally", parked.id),
            return_exceptions=True,
        )
        events.gate = None
        assert results.count(None) == 1, results
        (error,) = [r for r in results if r is not None]
        assert isinstance(error, LookupError), results
        assert str(error) == f"no parked event {parked.id!r} for tally v1"
        assert await harness.counts() == {"acc-1": 3}
        assert await runner.parked("tally") == []
        assert runner.status("tally").parked == 0
        assert _parked_gauge(runner) == 0.0


async def test_unparking_an_event_no_longer_parked_rolls_the_transaction_back(
    harness: ReadModelHarness[Any],
) -> None:
    events = MemoryEventStore(tick_registry())
    runner = await _runner_with_a_parked_event(harness, events, {"bad"})
    async with runner:
        await _settled(runner, events)
        (parked,) = await runner.parked("tally")
    store, projection = harness.store, harness.tally()
    checkpoint = await store.checkpoint("tally", 1)
    assert checkpoint is not None
    later = (await events.append("acc-2", [Ticked()])).position
    async with store.transaction(projection, None) as tx:
        tx.unpark(parked.id)

    async def retry_again() -> None:
        async with store.transaction(projection, None) as tx:
            await projection.handle(await events.read_stream("acc-2"), tx.uow)
            tx.unpark(parked.id)
            tx.advance_to(later)

    with pytest.raises(LookupError, match="no parked event"):
        await retry_again()
    # Nothing of the failed transaction applied: no count, checkpoint unmoved.
    assert await harness.counts() == {"acc-1": 2}
    assert await store.checkpoint("tally", 1) == checkpoint
    assert await store.parked_events("tally", 1) == []


# -- BUG 7: discarding an id that is not parked --------------------------------------------


@pytest.mark.parametrize("parked_id", ["garbage", "999:999", ""])
async def test_discarding_an_unknown_or_malformed_id_raises_and_changes_nothing(
    harness: ReadModelHarness[Any], parked_id: str
) -> None:
    events = MemoryEventStore(tick_registry())
    runner = await _runner_with_a_parked_event(harness, events, {"bad"})
    async with runner:
        await _settled(runner, events)
        parked = await runner.parked("tally")
        assert len(parked) == 1
        with pytest.raises(LookupError) as raised:
            await runner.discard_parked("tally", parked_id)
        assert str(raised.value) == f"no parked event {parked_id!r} for tally v1"
        assert await runner.parked("tally") == parked
        assert runner.status("tally").parked == 1
        assert _parked_gauge(runner) == 1.0
        # The real one still goes, once.
        await runner.discard_parked("tally", parked[0].id)
        with pytest.raises(LookupError, match="no parked event"):
            await runner.discard_parked("tally", parked[0].id)
        assert await runner.parked("tally") == []
        assert runner.status("tally").parked == 0
        assert _parked_gauge(runner) == 0.0
    assert await harness.counts() == {"acc-1": 2}


async def test_unparking_a_malformed_id_in_a_transaction_raises_lookup_error(
    harness: ReadModelHarness[Any],
) -> None:
    projection = harness.tally()
    await harness.store.prepare(projection, projection.setup)

    async def unpark() -> None:
        async with harness.store.transaction(projection, None) as tx:
            tx.unpark("not-a-token")

    with pytest.raises(LookupError, match="no parked event 'not-a-token' for tally v1"):
        await unpark()
