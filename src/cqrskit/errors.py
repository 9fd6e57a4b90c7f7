"""Typed errors raised by cqrskit.

Every error the framework raises on purpose derives from :class:`CqrsError`, so an
application can map them to responses in one place (the FastAPI integration does).
"""

from __future__ import annotations

__all__ = [
    "AggregateNotFound",
    "ConcurrencyError",
    "CqrsError",
    "DomainError",
    "DuplicateHandler",
    "EventStoreClosed",
    "EventStoreError",
    "HandlerNotFound",
    "IdempotencyKeyReused",
    "SchemaError",
    "UnexpectedVersion",
    "UnknownEventType",
]


class CqrsError(Exception):
    """Base class of every error cqrskit raises deliberately."""


class DomainError(CqrsError):
    """A business rule was violated; raised by aggregates before any event is recorded."""


class ConcurrencyError(CqrsError):
    """An append expected a stream version that is not the stream's current version.

    Nothing was written. ``expected`` and ``actual`` are stream versions; ``expected`` may
    also be one of the markers ``ANY`` (-1) or ``NO_STREAM`` (0).
    """

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        shown = {-1: "any", 0: "no stream"}.get(expected, str(expected))
        super().__init__(
            f"stream {stream_id!r}: expected version {shown}, but it is at version {actual}"
        )


class AggregateNotFound(CqrsError):
    """No stream exists for the requested aggregate."""

    def __init__(self, aggregate_type: str, aggregate_id: str) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        super().__init__(f"{aggregate_type} {aggregate_id!r} does not exist")


class UnexpectedVersion(CqrsError):
    """An aggregate is not at the version the caller based its change on.

    Raised by ``UnitOfWork.load(..., expected_version=n)``, typically with the version a
    client read (HTTP ``If-Match``). Unlike :class:`ConcurrencyError` it is not retried:
    the client must read again and decide, because its change was made against old state.
    """

    def __init__(self, aggregate_type: str, aggregate_id: str, expected: int, actual: int) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{aggregate_type} {aggregate_id!r} is at version {actual}, "
            f"not at the expected version {expected}"
        )


class IdempotencyKeyReused(CqrsError):
    """A command id (HTTP ``Idempotency-Key``) was sent again with a different command.

    A repeat of the *same* command replays its first result; a different command under an
    id already used is refused, since answering with the other command's result would lie.
    """

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        super().__init__(
            f"command id {message_id} was already used for a different command; "
            "use a new id (Idempotency-Key) for a new command"
        )


class HandlerNotFound(CqrsError):
    """A message was sent to a bus that has no handler for its type."""

    def __init__(self, message_type: type) -> None:
        self.message_type = message_type
        super().__init__(f"no handler registered for {message_type.__qualname__}")


class DuplicateHandler(CqrsError):
    """A second handler was registered for a message type that already has one."""

    def __init__(self, message_type: type) -> None:
        self.message_type = message_type
        super().__init__(f"a handler for {message_type.__qualname__} is already registered")


class UnknownEventType(CqrsError):
    """A stored event names a type (or a schema version) that no registered class handles."""

    def __init__(self, event_type: str, schema_version: int | None = None) -> None:
        self.event_type = event_type
        self.schema_version = schema_version
        detail = f"event type {event_type!r}"
        if schema_version is not None:
            detail += f" at schema version {schema_version}"
        super().__init__(f"{detail} is not registered; register its class or an upcaster")


class EventStoreError(CqrsError):
    """The event store failed in a way the caller cannot fix by retrying the same call."""


class EventStoreClosed(EventStoreError):
    """The event store handle was closed; open a new one."""

    def __init__(self) -> None:
        super().__init__("this event store handle is closed")


class SchemaError(EventStoreError):
    """The stored schema is newer than this version of cqrskit understands."""
