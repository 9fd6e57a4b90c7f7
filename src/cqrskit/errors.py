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
    "EventDecodeError",
    "EventEncodingError",
    "EventStoreClosed",
    "EventStoreError",
    "HandlerNotFound",
    "IdempotencyKeyReused",
    "SchemaError",
    "StoreOptionError",
    "StoreUnavailable",
    "UnexpectedVersion",
    "UnknownEventType",
    "UnknownStoredEventType",
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


class EventEncodingError(EventStoreError, ValueError):
    """An event was refused before anything was written: the store could not read it back.

    Raised by ``append``/``append_many`` when an event's stored JSON would not validate
    back into its own class: a float NaN or infinity anywhere (JSON has neither), a NUL
    character, or a value of the wrong type (an event built with ``model_construct`` or
    ``model_copy(update=...)``, which skip validation). It is a ``ValueError`` too: the
    event, not the store, is at fault. ``event_type`` names the event and ``field`` the
    offending field (dotted path; empty when the whole event is at fault).
    """

    def __init__(self, event_type: str, field: str, problem: str) -> None:
        self.event_type = event_type
        self.field = field
        where = f"field {field!r}" if field else "its data"
        super().__init__(f"event {event_type!r} cannot be stored: {where}: {problem}")


class StoreOptionError(CqrsError, ValueError):
    """A store's URL option or keyword argument has a value the store cannot use.

    ``option`` is its name, ``expected`` says what it takes and ``value`` is what was
    given: ``event store URL option command_timeout must be a positive number of seconds,
    not 'soon'``. Raised before anything is opened.
    """

    def __init__(self, option: str, expected: str, value: object, *, where: str = "") -> None:
        self.option = option
        self.expected = expected
        self.value = value
        named = f"{where} {option}" if where else option
        super().__init__(f"{named} must be {expected}, not {value!r}")


class StoreUnavailable(CqrsError, ConnectionError):
    """An event store or read store could not be reached when it was opened.

    The message names the store and its URL (password masked) and the cause, which is
    also chained (``__cause__``). It is a ``ConnectionError`` (an ``OSError``) because the
    store may come back: retrying later can succeed, and web layers answer 503.
    """


class EventDecodeError(EventStoreError):
    """A stored event could not be decoded into its class.

    Its type is not registered (any more), an upcaster is missing or failed, or the stored
    payload does not validate (a value of the wrong type, ``null`` for a required number).
    ``read_stream`` raises it, since an aggregate cannot be loaded from part of its
    history; ``read_all`` hands the event over as a
    :class:`~cqrskit.store.UndecodableEvent` instead, which projection runners treat as a
    failing event (retried, then parked or faulted). The attributes say which stored event
    it is; ``reason`` is the decoding error (also chained as ``__cause__`` when raised by a
    store). An undecodable event of an unregistered type (or schema version) is also an
    :class:`UnknownEventType`.
    """

    def __init__(
        self,
        stream_id: str,
        version: int,
        position: str,
        event_type: str,
        schema_version: int,
        reason: str,
    ) -> None:
        self.stream_id = stream_id
        self.version = version
        self.position = position
        self.event_type = event_type
        self.schema_version: int | None = schema_version
        self.reason = reason
        # Not super().__init__: in the UnknownEventType subclass that would be its own.
        CqrsError.__init__(
            self,
            f"cannot decode event {event_type!r} (schema version {schema_version}) of stream "
            f"{stream_id!r} v{version} at position {position}: {reason}",
        )


class UnknownStoredEventType(EventDecodeError, UnknownEventType):
    """An :class:`EventDecodeError` whose cause is an unregistered type or schema version,
    so that code catching :class:`UnknownEventType` keeps catching it."""
