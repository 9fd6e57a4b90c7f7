"""Focused runner, policy and adapter behaviour that the contract suite does not pin down."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from cqrskit.messages import DomainEvent
from cqrskit.projection import (
    FailurePolicy,
    PostgresLeases,
    Projection,
    ProjectionRunner,
    ProjectionState,
)
from cqrskit.projection.testing import (
    MemoryHarness,
    Ticked,
    append_ticks,
    eventually,
    tick_registry,
)
from cqrskit.readstore import MemoryReadStore, MemoryUnitOfWork
from cqrskit.readstore._postgres import lock_key, numbered
from cqrskit.readstore.sql import check_name
from cqrskit.store import START, EventPage, MemoryEventStore, Position, RecordedEvent


def test_placeholders_are_numbered_outside_quotes() -> None:
    assert numbered("SELECT ? , '?', \"a?\" FROM t WHERE x = ? AND y = ?") == (
        "SELECT $1 , '?', \"a?\" FROM t WHERE x = $2 AND y = $3"
    )


def test_failure_policy_backs_off_exponentially_up_to_a_cap() -> None:
    policy = FailurePolicy(retries=5, backoff=0.1, max_backoff=0.5)
    assert [policy.delay(n) for n in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    with pytest.raises(ValueError, match="stop"):
        FailurePolicy(then="skip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        FailurePolicy(retries=-1)


def test_projection_declarations_are_checked() -> None:
    class Nameless(Projection[MemoryUnitOfWork]):
        handles = (Ticked,)

        async def handle(self, events: Sequence[RecordedEvent], uow: MemoryUnitOfWork) -> None:
            pass

    with pytest.raises(TypeError, match="needs a name"):
        Nameless()
    with pytest.raises(ValueError, match="version"):
        Nameless(name="x", version=0)
    assert repr(Nameless(name="x", version=3)) == "<Nameless x v3>"
    with pytest.raises(ValueError, match="must match"):
        check_name("projection", "Drop Table")


class _Slow(Projection[MemoryUnitOfWork]):
    name = "slow"
    handles = (Ticked,)

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, events: Sequence[RecordedEvent], uow: MemoryUnitOfWork) -> None:
        for event in events:
            uow.increment("counts", event.stream_id, "n")
        self.entered.set()
        await self.release.wait()


async def test_stop_lets_the_batch_in_flight_finish() -> None:
    events = MemoryEventStore(tick_registry())
    await append_ticks(events, ["a"], 10)
    store = MemoryReadStore()
    projection = _Slow()
    runner = ProjectionRunner(events, registry=CollectorRegistry(), batch_size=4)
    runner.add(projection, store)
    await runner.start()
    await projection.entered.wait()
    stopping = asyncio.create_task(runner.stop(timeout=5))
    await asyncio.sleep(0.05)
    assert not stopping.done()
    projection.release.set()
    await stopping
    # The batch in flight committed whole, and no further batch started.
    assert store.rows("slow", "counts") == {"a": {"n": 4}}
    assert await store.live_checkpoint("slow") == Position(0, 4)


async def test_stop_timeout_rolls_the_batch_in_flight_back_whole() -> None:
    events = MemoryEventStore(tick_registry())
    await append_ticks(events, ["a"], 10)
    store = MemoryReadStore()
    projection = _Slow()
    runner = ProjectionRunner(events, registry=CollectorRegistry(), batch_size=4)
    runner.add(projection, store)
    await runner.start()
    await projection.entered.wait()
    await runner.stop(timeout=0.05)
    assert store.rows("slow", "counts") == {}
    assert await store.live_checkpoint("slow") == START
    assert runner.status("slow").state is ProjectionState.STOPPED


class _BusyStore(MemoryEventStore):
    """Every read first appends a full batch: reads never come back short."""

    busy = True

    async def read_all(
        self,
        after: Position | str = START,
        limit: int = 1000,
        *,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        if self.busy:
            await self.append("busy", [Ticked() for _ in range(limit)])
        return await super().read_all(after, limit, types=types)


async def test_rebuild_switches_under_a_load_that_keeps_batches_full() -> None:
    events = _BusyStore(tick_registry())
    events.busy = False
    await append_ticks(events, ["a", "b"], 20)
    harness = MemoryHarness(MemoryReadStore())
    first = ProjectionRunner(events, registry=CollectorRegistry(), batch_size=5)
    first.add(harness.tally(version=1), harness.store)
    async with first:
        assert (await first.wait_for("tally", await events.head(), timeout=5)).reached
    events.busy = True
    runner = ProjectionRunner(events, registry=CollectorRegistry(), batch_size=5, drop_delay=0)
    runner.add(harness.tally(version=2), harness.store, previous=harness.tally(version=1))
    async with runner:
        after_switch = (ProjectionState.CATCHING_UP, ProjectionState.LIVE)
        await eventually(lambda: runner.status("tally").state in after_switch)
        assert await harness.store.live_version("tally") == 2
        events.busy = False
        assert (await runner.wait_for("tally", await events.head(), timeout=5)).reached
        counts = await harness.counts()
    assert counts["a"] == counts["b"] == 20
    assert counts["busy"] == len(await events.read_stream("busy"))


async def test_progress_iterator_ends_when_no_rebuild_runs() -> None:
    events = MemoryEventStore(tick_registry())
    harness = MemoryHarness(MemoryReadStore())
    runner = ProjectionRunner(events, registry=CollectorRegistry())
    runner.add(harness.tally(), harness.store)
    async with runner:
        await eventually(lambda: runner.status("tally").state is ProjectionState.LIVE)
        assert [p async for p in runner.progress("tally")] == []
        with pytest.raises(LookupError):
            runner.status("nope")
        with pytest.raises(ValueError, match="already added"):
            runner.add(harness.tally(), harness.store)


@pytest.mark.postgres
async def test_postgres_lease_is_exclusive_and_noticed_when_lost(postgres_url: str) -> None:
    leases = PostgresLeases(postgres_url, check_interval=0.05)
    first = await leases.try_acquire("lease-test")
    assert first is not None
    try:
        assert await leases.try_acquire("lease-test") is None
        other = await leases.try_acquire("another-projection")
        assert other is not None
        await other.release()
        # An administrator (or a network fault) ends the session holding the lock.
        conn = await asyncpg.connect(postgres_url)
        try:
            # Only the session holding this test's lock: others on the server (other
            # tests' runners, other processes) must not lose theirs.
            key = lock_key("cqrskit-projection:lease-test")
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() "
                "AND ((classid::bigint << 32) | objid::bigint) = $1",
                key,
            )
        finally:
            await conn.close()
        await asyncio.wait_for(first.lost.wait(), 5)
        second = await leases.try_acquire("lease-test")
        assert second is not None
        await second.release()
    finally:
        await first.release()


class _FlakyStore(MemoryEventStore):
    """The first reads fail, as when the event store's server restarts."""

    failures = 2

    async def read_all(
        self,
        after: Position | str = START,
        limit: int = 1000,
        *,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("event store unavailable")
        return await super().read_all(after, limit, types=types)


async def test_store_errors_outside_handling_restart_from_the_checkpoint() -> None:
    events = _FlakyStore(tick_registry())
    await append_ticks(events, ["a", "b"], 5)
    harness = MemoryHarness(MemoryReadStore())
    runner = ProjectionRunner(events, registry=CollectorRegistry(), error_pause=0.01)
    runner.add(harness.tally(), harness.store)
    async with runner:
        assert (await runner.wait_for("tally", await events.head(), timeout=5)).reached
        status = runner.status("tally")
    assert events.failures == 0
    assert status.last_error == "ConnectionError: event store unavailable"
    assert await harness.counts() == {"a": 5, "b": 5}


class _TakenLease:
    def __init__(self) -> None:
        self._lost = asyncio.Event()

    @property
    def lost(self) -> asyncio.Event:
        return self._lost

    async def release(self) -> None:
        pass


class _OneLeaseOnly:
    """Grants one lease; once it is lost (another process took over), grants no more."""

    def __init__(self) -> None:
        self.granted: list[_TakenLease] = []

    async def try_acquire(self, name: str) -> _TakenLease | None:
        if self.granted:
            return None
        self.granted.append(_TakenLease())
        return self.granted[-1]


async def test_a_live_projection_notices_a_lost_lease_and_a_stop_while_it_waits() -> None:
    # The waits for new events share one pair of watch tasks per follow: across many
    # waits, woken by events and by idle timeouts, a lost lease is still noticed at once
    # (long before the idle wait's timeout), and so is a stop.
    events = MemoryEventStore(tick_registry())
    harness = MemoryHarness(MemoryReadStore())
    leases = _OneLeaseOnly()
    runner = ProjectionRunner(
        events, leases=leases, registry=CollectorRegistry(), idle_wait=0.02, lease_retry=0.05
    )
    runner.add(harness.tally(), harness.store)
    async with runner:
        for round_no in range(5):
            last = await append_ticks(events, ["a", "b"], 2, label=str(round_no))
            assert (await runner.wait_for("tally", last, timeout=5)).reached
            await asyncio.sleep(0.05)  # some idle waits time out in between
        assert await harness.counts() == {"a": 10, "b": 10}
        runner.idle_wait = 60.0  # from here on, only the watch can end a wait in time
        await asyncio.sleep(0.05)
        leases.granted[0].lost.set()
        await eventually(lambda: runner.status("tally").state is ProjectionState.STANDBY)
    stopped = ProjectionRunner(events, registry=CollectorRegistry(), idle_wait=60.0)
    stopped.add(harness.tally(version=2), MemoryReadStore())
    await stopped.start()
    await eventually(lambda: stopped.status("tally").state is ProjectionState.LIVE)
    await asyncio.wait_for(stopped.stop(), timeout=5)
