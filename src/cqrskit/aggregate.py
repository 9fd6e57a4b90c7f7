"""Event-sourced aggregates: state changes only by applying events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Self

from cqrskit.messages import DomainEvent

__all__ = ["Aggregate"]


class Aggregate:
    """Base class of event-sourced aggregates.

    A domain method checks its invariants, raising a :class:`~cqrskit.errors.DomainError`
    before anything changes, and then calls :meth:`record` with the event that says what
    happened. :meth:`apply` is the only place state changes, both for new events and when
    the aggregate is loaded from its stream.

    ``category`` prefixes the stream id (``"Order-<id>"``); it defaults to the class name.
    ``snapshot_schema`` versions the shape of :meth:`snapshot_state`; bump it when that
    shape changes and older snapshots are ignored.
    """

    category: ClassVar[str]
    snapshot_schema: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "category" not in cls.__dict__:
            cls.category = cls.__name__

    def __init__(self, id: str) -> None:
        if not id:
            raise ValueError("an aggregate id must not be empty")
        self.id = id
        self.version = 0
        self._pending: list[DomainEvent] = []

    @classmethod
    def stream_id_for(cls, id: str) -> str:
        """The id of the stream that holds the aggregate with ``id``."""
        return f"{cls.category}-{id}"

    @property
    def stream_id(self) -> str:
        """The id of this aggregate's stream."""
        return self.stream_id_for(self.id)

    def apply(self, event: DomainEvent) -> None:
        """Change state to reflect ``event``. Subclasses must handle each of their events."""
        raise NotImplementedError(f"{type(self).__qualname__} does not apply {type(event)}")

    def record(self, event: DomainEvent) -> None:
        """Apply a new event and keep it until :meth:`collect_events` hands it out."""
        self.apply(event)
        self.version += 1
        self._pending.append(event)

    def collect_events(self) -> list[DomainEvent]:
        """The events recorded since the last call, handed out once."""
        events, self._pending = self._pending, []
        return events

    @property
    def has_pending_events(self) -> bool:
        """Whether events were recorded that have not been collected yet."""
        return bool(self._pending)

    @property
    def persisted_version(self) -> int:
        """The stream version before this aggregate's pending events."""
        return self.version - len(self._pending)

    def replay(self, events: Iterable[DomainEvent]) -> None:
        """Apply stored events (not new ones): each one advances ``version``."""
        for event in events:
            self.apply(event)
            self.version += 1

    @classmethod
    def from_events(cls, id: str, events: Iterable[DomainEvent]) -> Self:
        """An aggregate rebuilt from its history."""
        aggregate = cls(id)
        aggregate.replay(events)
        return aggregate

    def snapshot_state(self) -> dict[str, Any]:
        """JSON-ready state for a snapshot; override (with :meth:`restore_state`) to allow
        snapshots of this aggregate type."""
        raise NotImplementedError(f"{type(self).__qualname__} does not support snapshots")

    def restore_state(self, state: dict[str, Any]) -> None:
        """Set state from :meth:`snapshot_state`'s output."""
        raise NotImplementedError(f"{type(self).__qualname__} does not support snapshots")

    @classmethod
    def supports_snapshots(cls) -> bool:
        """Whether this type overrides both snapshot methods."""
        return (
            cls.snapshot_state is not Aggregate.snapshot_state
            and cls.restore_state is not Aggregate.restore_state
        )
