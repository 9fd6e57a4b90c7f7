"""The projection contract suite: what every read store must do under the runner.

Bind it once per read store by providing one fixture, ``harness``, that yields a
:class:`ReadModelHarness` for an empty store::

    class TestMyReadStore(ProjectionContract):
        @pytest.fixture
        async def harness(self) -> AsyncIterator[ReadModelHarness[Any]]:
            store = ...
            yield SqlHarness(store)
            await store.close()

The harnesses here (memory, SQL, Redis) double as small examples of projection code for
each store. Needs the ``testing`` extra.

:func:`check_projection` is the matching check for *your* projection: the read model it
builds must not depend on batch sizes, replays or rebuilds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry

try:
    import pytest
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        'cqrskit.projection.testing needs pytest: pip install "cqrskit[testing]"'
    ) from exc

from cqrskit.errors import EventDecodeError, UnknownEventType
from cqrskit.messages import DomainEvent
from cqrskit.projection.base import (
    FailurePolicy,
    Projection,
    ProjectionState,
    RebuildProgress,
)
from cqrskit.projection.runner import ProjectionRunner
from cqrskit.readstore.base import CheckpointConflict, ReadStore
from cqrskit.readstore.memory import MemoryReadStore, MemoryUnitOfWork
from cqrskit.readstore.redis import RedisReadStore, RedisUnitOfWork
from cqrskit.readstore.sql import SqlReadStore, SqlUnitOfWork
from cqrskit.store.base import START, EventStore, Position, RecordedEvent
from cqrskit.store.memory import MemoryEventStore
from cqrskit.store.serialization import EventRegistry

__all__ = [
    "Ignored",
    "MemoryHarness",
    "ProjectionContract",
    "ReadModelHarness",
    "RedisHarness",
    "SqlHarness",
    "Ticked",
    "check_projection",
    "eventually",
    "harness_for",
    "rewrite_stored_event",
    "tick_registry",
]

U = TypeVar("U")
T = TypeVar("T")


class Ticked(DomainEvent):
    """Contract event: counted once per stream by the tally projection."""

    event_type = "projection-contract.Ticked"
    label: str = ""


class Ignored(DomainEvent):
    """Contract event the tally projection does not handle."""

    event_type = "projection-contract.Ignored"


def tick_registry() -> EventRegistry:
    """The registry of the contract events."""
    return EventRegistry([Ticked, Ignored])


class Poisoned(Exception):
    """Raised by the tally projection for labels in its ``poison`` set."""


class _Tally(Projection[U]):
    """Counts ``Ticked`` events per stream: applying one twice shows as a wrong count."""

    handles = (Ticked,)
    tables = ("counts",)

    def __init__(
        self,
        *,
        name: str,
        version: int,
        failure_policy: FailurePolicy,
        poison: set[str],
    ) -> None:
        super().__init__(name=name, version=version, failure_policy=failure_policy)
        self.poison = poison

    def check(self, event: RecordedEvent) -> None:
        assert isinstance(event.event, Ticked)
        if event.event.label in self.poison:
            raise Poisoned(f"poisoned label {event.event.label!r}")


class _MemoryTally(_Tally[MemoryUnitOfWork]):
    async def handle(self, events: Sequence[RecordedEvent], uow: MemoryUnitOfWork) -> None:
        for event in events:
            self.check(event)
            uow.increment("counts", event.stream_id, "n")


class SqlTally(_Tally[SqlUnitOfWork]):
    """The tally in portable SQL: the same code runs on SQLite and PostgreSQL."""

    async def setup(self, uow: SqlUnitOfWork) -> None:
        await uow.execute(
            "CREATE TABLE {counts} (stream_id TEXT PRIMARY KEY, n BIGINT NOT NULL, "
            "last_version BIGINT NOT NULL)"
        )

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        for event in events:
            self.check(event)
            await uow.execute(
                "INSERT INTO {counts} (stream_id, n, last_version) VALUES (?, 1, ?) "
                "ON CONFLICT (stream_id) DO UPDATE SET n = {counts}.n + 1, "
                "last_version = excluded.last_version",
                event.stream_id,
                event.version,
            )


class _RedisTally(_Tally[RedisUnitOfWork]):
    async def handle(self, events: Sequence[RecordedEvent], uow: RedisUnitOfWork) -> None:
        for event in events:
            self.check(event)
            uow.pipe.hincrby(uow.key("counts"), event.stream_id, 1)


class ReadModelHarness(ABC, Generic[U]):
    """A read store plus the contract's tally projection written for it."""

    store: ReadStore[U]
    tally_class: Callable[..., Projection[U]]
    """The contract's tally projection written for this store."""

    def tally(
        self,
        *,
        name: str = "tally",
        version: int = 1,
        policy: FailurePolicy | None = None,
        poison: set[str] | None = None,
    ) -> Projection[U]:
        """A tally projection for this store; events whose label is in ``poison`` fail."""
        return self.tally_class(
            name=name,
            version=version,
            failure_policy=policy or FailurePolicy(retries=1, backoff=0.01),
            poison=poison or set(),
        )

    @abstractmethod
    async def counts(self, name: str = "tally") -> dict[str, int]:
        """Readers' view of the tally's live version: stream id -> count."""


class MemoryHarness(ReadModelHarness[MemoryUnitOfWork]):
    """The contract harness of :class:`MemoryReadStore`."""

    tally_class = _MemoryTally

    def __init__(self, store: MemoryReadStore) -> None:
        self.store = self.memory = store

    async def counts(self, name: str = "tally") -> dict[str, int]:
        return {k: int(v["n"]) for k, v in self.memory.rows(name, "counts").items()}


class SqlHarness(ReadModelHarness[SqlUnitOfWork]):
    """The contract harness of :class:`SqlReadStore` (SQLite or PostgreSQL)."""

    tally_class = SqlTally

    def __init__(self, store: SqlReadStore) -> None:
        self.store = self.sql = store

    async def counts(self, name: str = "tally") -> dict[str, int]:
        rows = await self.sql.query(name, "SELECT stream_id, n FROM {counts}")
        return {r["stream_id"]: int(r["n"]) for r in rows}


class RedisHarness(ReadModelHarness[RedisUnitOfWork]):
    """The contract harness of :class:`RedisReadStore`."""

    tally_class = _RedisTally

    def __init__(self, store: RedisReadStore) -> None:
        self.store = self.redis = store

    async def counts(self, name: str = "tally") -> dict[str, int]:
        prefix = await self.redis.live_prefix(name)
        raw = await self.redis.client.hgetall(prefix + "counts")
        return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}


def harness_for(store: ReadStore[Any]) -> ReadModelHarness[Any]:
    """The contract harness of ``store``'s kind (memory, SQL or Redis), on ``store``.

    For tests that open a store from a URL and must use the tally written for it.
    """
    if isinstance(store, MemoryReadStore):
        return MemoryHarness(store)
    if isinstance(store, SqlReadStore):
        return SqlHarness(store)
    if isinstance(store, RedisReadStore):
        return RedisHarness(store)
    raise TypeError(f"no contract harness for {type(store).__qualname__}")


async def eventually(
    condition: Callable[[], bool], timeout: float = 5.0, message: str = "condition"
) -> None:
    """Wait (briefly polling) until ``condition()`` holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} did not hold within {timeout}s")
        await asyncio.sleep(0.01)


async def append_ticks(
    events: EventStore, streams: Sequence[str], per_stream: int, label: str = ""
) -> Position:
    """Append ``per_stream`` ticks to each stream (interleaved); the last position."""
    position = START
    for _ in range(per_stream):
        for stream in streams:
            result = await events.append(stream, [Ticked(label=label)])
            position = result.position
    return position


def rewrite_stored_event(
    events: MemoryEventStore,
    position: Position,
    *,
    event_type: str | None = None,
    schema_version: int | None = None,
    data: str | None = None,
) -> None:
    """Change an event as stored in a :class:`MemoryEventStore`, bypassing encoding: what
    an older program, a removed event class or a bad data migration leaves behind."""
    storage = events.storage
    index = position.seq - 1
    row = storage.rows[index]
    changes: dict[str, Any] = {
        "event_type": event_type,
        "schema_version": schema_version,
        "data": data,
    }
    stored = dataclasses.replace(row.event, **{k: v for k, v in changes.items() if v is not None})
    storage.rows[index] = new_row = dataclasses.replace(row, event=stored)
    storage.streams[row.stream_id][row.version - 1] = new_row


class _Retyped(Ticked):
    """A tick stored under a name no registry knows, until a test registers this class."""

    event_type = "projection-contract.Retyped"


def _memory_events(events: EventStore) -> MemoryEventStore:
    if not isinstance(events, MemoryEventStore):
        pytest.skip("writes undecodable rows through a MemoryEventStore's storage")
    return events


def _streams(n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"s-{run}-{i}" for i in range(n)]


class ProjectionContract:
    """What every read store must do under the runner (exactly-once, policies, rebuild)."""

    batch_size = 7

    @pytest.fixture
    def harness(self) -> ReadModelHarness[Any]:
        """Bind this fixture: a harness on an empty read store (closed afterwards)."""
        raise NotImplementedError("bind harness for your read store")

    @pytest.fixture
    def events(self) -> EventStore:
        return MemoryEventStore(tick_registry())

    def runner(self, events: EventStore, **options: Any) -> ProjectionRunner:
        options.setdefault("batch_size", self.batch_size)
        options.setdefault("idle_wait", 1.0)
        options.setdefault("drop_delay", 0.05)
        options.setdefault("lease_retry", 0.05)
        options.setdefault("registry", CollectorRegistry())
        return ProjectionRunner(events, **options)

    async def caught_up(self, runner: ProjectionRunner, events: EventStore, name: str) -> None:
        result = await runner.wait_for(name, await events.head(), timeout=10)
        assert result.reached, result

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

    # -- rebuild ------------------------------------------------------------------------

    async def test_rebuild_beside_the_live_version_then_switch(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(4)
        await append_ticks(events, streams, 10)
        runner = self.runner(events)
        runner.add(harness.tally(version=1), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")
        reports: list[RebuildProgress] = []
        runner = self.runner(events, on_progress=reports.append)
        runner.add(harness.tally(version=2), harness.store, previous=harness.tally(version=1))
        async with runner:
            writes = 0
            while runner.status("tally").state is not ProjectionState.LIVE or writes < 3:
                await append_ticks(events, streams[:1], 1)
                writes += 1
                counts = await harness.counts()
                # Readers see a complete model at every moment: old (kept current) or new.
                assert sum(counts.values()) >= 40
                await asyncio.sleep(0.005)
            await self.caught_up(runner, events, "tally")
            assert await harness.store.live_version("tally") == 2
            deadline = time.monotonic() + 5
            while await harness.store.checkpoint("tally", 1) is not None:
                assert time.monotonic() < deadline, "the old version was not dropped"
                await asyncio.sleep(0.01)
        assert await harness.counts() == {**dict.fromkeys(streams, 10), streams[0]: 10 + writes}
        assert reports
        assert reports[-1].finished
        assert reports[-1].done == reports[-1].total >= 40

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


def _sample(runner: ProjectionRunner, metric: str) -> float | None:
    return runner.metrics.registry.get_sample_value(metric, {"projection": "tally"})


# -- a check for any projection ---------------------------------------------------------


async def _all_events(events: EventStore, page: int) -> list[RecordedEvent]:
    recorded: list[RecordedEvent] = []
    while True:
        more = await events.read_all(recorded[-1].position if recorded else START, page)
        recorded += more
        if len(more) < page:
            return recorded


def _checked_runner(events: EventStore, batch_size: int) -> ProjectionRunner:
    return ProjectionRunner(
        events,
        batch_size=batch_size,
        idle_wait=0.2,
        drop_delay=0.05,
        lease_retry=0.05,
        registry=CollectorRegistry(),
    )


async def _no_parked(store: ReadStore[Any], projection: Projection[Any], when: str) -> None:
    parked = await store.parked_events(projection.name, projection.version)
    if parked:
        raise AssertionError(
            f"{projection!r} parked {len(parked)} event(s) {when}; first: {parked[0].error}"
        )


def _same(expected: object, actual: object, what: str) -> None:
    if expected != actual:
        raise AssertionError(
            f"{what} changed the read model:\n  expected {expected!r:.2000}\n"
            f"  actual   {actual!r:.2000}"
        )


async def check_projection(
    make_projection: Callable[[int], Projection[Any]],
    open_store: Callable[[], Awaitable[ReadStore[Any]]],
    events: EventStore,
    snapshot: Callable[[ReadStore[Any]], Awaitable[T]],
    *,
    batch_sizes: tuple[int, int] = (1, 1000),
    timeout: float = 60.0,
) -> T:
    """Check that a projection's read model depends only on the events, then return it.

    - ``make_projection(version)`` builds the projection at a version (1, then 2);
    - ``open_store()`` opens a new, empty read store of the kind under test (it is called
      twice; the check closes what it opens);
    - ``events`` holds the events to project (any event store);
    - ``snapshot(store)`` reads the live read model into plain, comparable data (rows
      sorted, store-internal ids left out; readers' answers do well).

    Proves, raising :class:`AssertionError` with both snapshots otherwise:

    1. the runner builds the same model in batches of ``batch_sizes[0]`` as of
       ``batch_sizes[1]``, with no event parked;
    2. handling every event again (a replayed batch), and then the later half again,
       each in transactions of their own, leaves the model as it was (idempotent writes);
    3. a rebuild into version 2 beside the live version 1 (``previous=``) ends, after the
       switch, with the same model.

    Returns the final snapshot, for the test's own assertions on its content.
    """
    small, large = batch_sizes
    stores: list[ReadStore[Any]] = []
    try:
        by_batch: list[T] = []
        for size in (small, large):
            store = await open_store()
            stores.append(store)
            projection = make_projection(1)
            runner = _checked_runner(events, size)
            runner.add(projection, store)
            async with runner:
                reached = await runner.wait_for(projection.name, await events.head(), timeout)
                if not reached.reached:
                    raise AssertionError(f"{projection!r} did not catch up: {reached}")
            await _no_parked(store, projection, f"in batches of {size}")
            by_batch.append(await snapshot(store))
        _same(by_batch[0], by_batch[1], f"batches of {large} instead of {small}")
        expected = by_batch[1]

        store = stores[1]
        projection = make_projection(1)
        handled = [e for e in await _all_events(events, large) if projection.handles_event(e)]
        for replay in (handled, handled[len(handled) // 2 :]):
            for start in range(0, len(replay), large):
                # No checkpoint move: just the projection's effects, applied a second time.
                async with store.transaction(projection, None) as tx:
                    await projection.handle(replay[start : start + large], tx.uow)
        _same(expected, await snapshot(store), "handling the events again")

        rebuilt = make_projection(2)
        runner = _checked_runner(events, large)
        runner.add(rebuilt, store, previous=make_projection(1))
        deadline = time.monotonic() + timeout
        async with runner:
            while await store.live_version(rebuilt.name) != rebuilt.version:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{rebuilt!r} was not made live within {timeout}s")
                await asyncio.sleep(0.01)
        await _no_parked(store, rebuilt, "while rebuilding")
        final = await snapshot(store)
        _same(expected, final, "rebuilding into a new version")
        return final
    finally:
        for store in stores:
            await store.close()
