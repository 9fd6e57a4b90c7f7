"""The projection contract's kit: its events, the tally projection written for each read
store, the harnesses that bind them, and what the contract's tests share."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from cqrskit.messages import DomainEvent
from cqrskit.projection.base import FailurePolicy, Projection
from cqrskit.projection.runner import ProjectionRunner
from cqrskit.readstore.base import ReadStore
from cqrskit.readstore.memory import MemoryReadStore, MemoryUnitOfWork
from cqrskit.readstore.redis import RedisReadStore, RedisUnitOfWork
from cqrskit.readstore.sql import SqlReadStore, SqlUnitOfWork
from cqrskit.store.base import START, EventStore, Position, RecordedEvent
from cqrskit.store.memory import MemoryEventStore
from cqrskit.store.serialization import EventRegistry

U = TypeVar("U")


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
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = 5.0,
    message: str = "condition",
) -> None:
    """Wait (briefly polling) until ``condition()`` holds (a bool, or a coroutine that
    gives one); fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
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


def _streams(n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"s-{run}-{i}" for i in range(n)]


class _ContractBase:
    """The fixtures and helpers of :class:`~cqrskit.projection.testing.ProjectionContract`,
    which its themed test mixins share."""

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


def _sample(runner: ProjectionRunner, metric: str) -> float | None:
    return runner.metrics.registry.get_sample_value(metric, {"projection": "tally"})
