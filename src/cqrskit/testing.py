"""Testing helpers: given/when/then scenarios and the event-store contract suite.

Needs the ``testing`` extra (pytest, pytest-asyncio, hypothesis).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

try:
    import hypothesis  # noqa: F401  (the contract suite's modules use both)
    import pytest  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError('cqrskit.testing needs pytest: pip install "cqrskit[testing]"') from exc

from cqrskit._store_contract import EventStoreContract

# Not in __all__, but the framework's own tests use the contract's messages from here.
from cqrskit._store_contract_input import Measured as Measured
from cqrskit._store_contract_kit import AddItem as AddItem
from cqrskit._store_contract_kit import ItemAdded as ItemAdded
from cqrskit._store_contract_kit import Noted as Noted
from cqrskit._store_contract_kit import StoreOpener
from cqrskit._store_contract_kit import Tally as Tally
from cqrskit._store_contract_kit import contract_registry as contract_registry
from cqrskit.aggregate import Aggregate
from cqrskit.bus import CommandBus, CommandHandler, CommandResult
from cqrskit.errors import DomainError
from cqrskit.messages import Command, DomainEvent
from cqrskit.middleware import IdempotencyMiddleware
from cqrskit.repository import Repository
from cqrskit.store.base import START, RecordedEvent, StreamAppend
from cqrskit.store.memory import MemoryEventStore
from cqrskit.store.serialization import EventRegistry

__all__ = [
    "AggregateScenario",
    "CommandScenario",
    "EventStoreContract",
    "StoreOpener",
    "event_payloads",
]

A = TypeVar("A", bound=Aggregate)
C = TypeVar("C", bound=Command)


def event_payloads(events: Sequence[DomainEvent]) -> list[tuple[str, dict[str, Any]]]:
    """Events as (type name, payload) pairs, metadata left out, for comparing in tests."""
    return [(e.event_type, e.model_dump(exclude={"metadata"})) for e in events]


class AggregateScenario:
    """Given past events, when a domain method runs, then these events (or this error).

    >>> AggregateScenario(Order, "o-1").given(OrderPlaced(...)).when(
    ...     lambda order: order.ship()).then(OrderShipped(...))
    """

    def __init__(self, cls: type[A], id: str = "test") -> None:
        self._cls: type[Aggregate] = cls
        self._id = id
        self._history: list[DomainEvent] = []
        self._new: list[DomainEvent] | None = None
        self._error: Exception | None = None
        self.aggregate: Aggregate | None = None

    def given(self, *events: DomainEvent) -> Self:
        """Events already in the aggregate's stream."""
        self._history.extend(events)
        return self

    def when(self, action: Callable[[Any], object]) -> Self:
        """Run ``action`` on the aggregate rebuilt from the given events (or a new one)."""
        aggregate = self._cls.from_events(self._id, self._history)
        self.aggregate = aggregate
        try:
            action(aggregate)
        except DomainError as exc:
            self._error = exc
        self._new = aggregate.collect_events()
        return self

    def then(self, *expected: DomainEvent) -> Self:
        """Assert that exactly ``expected`` were recorded (metadata ignored)."""
        if self._error is not None:
            raise AssertionError(f"expected events, but the action raised {self._error!r}")
        assert self._new is not None, "call when() before then()"
        assert event_payloads(self._new) == event_payloads(expected)
        return self

    def then_raises(self, error: type[DomainError], match: str | None = None) -> Self:
        """Assert that the action raised ``error`` and recorded nothing."""
        if self._error is None:
            raise AssertionError(f"expected {error.__name__}, but events were {self._new!r}")
        assert isinstance(self._error, error), f"raised {self._error!r}, not {error.__name__}"
        if match is not None:
            assert match in str(self._error), f"{match!r} not in {str(self._error)!r}"
        assert not self._new, "events were recorded before the domain error"
        return self


class CommandScenario:
    """Given events in streams, when a command goes through a real bus, then new events.

    Runs on an in-memory event store with the idempotency middleware, so handlers are
    exercised exactly as in production.
    """

    def __init__(
        self, registry: EventRegistry, handlers: Mapping[type[Command], CommandHandler[Any]]
    ) -> None:
        self.store = MemoryEventStore(registry)
        self.bus = CommandBus(Repository(self.store), [IdempotencyMiddleware(self.store)])
        for command_type, handler in handlers.items():
            self.bus.register(command_type, handler)
        self._given: list[StreamAppend] = []
        self._seen = START
        self.result: CommandResult | None = None
        self.error: Exception | None = None

    def given(self, cls: type[Aggregate], id: str, *events: DomainEvent) -> Self:
        """Events already in the stream of aggregate ``cls``/``id``; called again for the
        same stream, the events follow those given before."""
        stream_id = cls.stream_id_for(id)
        for n, earlier in enumerate(self._given):
            if earlier.stream_id == stream_id:
                self._given[n] = StreamAppend(stream_id, [*earlier.events, *events])
                return self
        self._given.append(StreamAppend(stream_id, events))
        return self

    async def when(self, command: Command) -> Self:
        """Store the given events, then send ``command``; its error is kept for then_raises."""
        if self._given:
            await self.store.append_many(self._given)
            self._given = []
        self._seen = await self.store.head()
        try:
            self.result = await self.bus.send(command)
        except DomainError as exc:
            self.error = exc
        return self

    async def new_events(self) -> list[RecordedEvent]:
        """Every event appended by ``when``."""
        return await self.store.read_all(self._seen, limit=1_000_000)

    async def then(
        self, expected: Mapping[tuple[type[Aggregate], str], Sequence[DomainEvent]]
    ) -> Self:
        """Assert the new events, by aggregate, are exactly ``expected``."""
        if self.error is not None:
            raise AssertionError(f"expected events, but the command raised {self.error!r}")
        by_stream: dict[str, list[DomainEvent]] = {}
        for recorded in await self.new_events():
            by_stream.setdefault(recorded.stream_id, []).append(recorded.event)
        wanted = {cls.stream_id_for(id): list(evs) for (cls, id), evs in expected.items()}
        assert {s: event_payloads(e) for s, e in by_stream.items()} == {
            s: event_payloads(e) for s, e in wanted.items() if e
        }
        return self

    async def then_raises(self, error: type[DomainError], match: str | None = None) -> Self:
        """Assert the command raised ``error`` and appended nothing."""
        assert isinstance(self.error, error), f"expected {error.__name__}, got {self.error!r}"
        if match is not None:
            assert match in str(self.error), f"{match!r} not in {str(self.error)!r}"
        assert await self.new_events() == []
        return self
