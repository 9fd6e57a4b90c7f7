"""How the projection runner tells failures apart: a store out of reach, a bad event, a
lost lease, a request to stop; and how it treats events it could not decode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from cqrskit.errors import EventDecodeError
from cqrskit.projection.base import Projection
from cqrskit.readstore.base import CheckpointConflict
from cqrskit.store.base import RecordedEvent
from cqrskit.store.serialization import UndecodableEvent


class _LeaseLost(Exception):
    pass


class _CheckpointVanished(_LeaseLost):
    """The projection's stored checkpoint is gone (a flushed Redis, a restored backup):
    the read model must be built again from the first event."""


def _conflict(exc: CheckpointConflict) -> _LeaseLost:
    """What a failed checkpoint guard means: another runner moved the checkpoint on (the
    lease is lost), or nobody did and it is simply gone."""
    return _CheckpointVanished() if exc.actual is None else _LeaseLost()


class _Stopping(Exception):
    pass


class _RebuildRequested(Exception):
    pass


class _Faulted(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class _StoreFailed(Exception):
    """A store could not be reached: the runner backs off and starts over from the
    checkpoint, without counting it against any event."""

    def __init__(self, store: str, error: Exception) -> None:
        super().__init__(store, error)
        self.store = store
        self.error = error


_OUTAGES: Final = frozenset(
    {
        "ConnectionError",  # redis.exceptions (the builtin one is an OSError)
        "TimeoutError",  # redis.exceptions
        "PostgresConnectionError",  # asyncpg: SQLSTATE class 08, connection lost or refused
        "CannotConnectNowError",  # asyncpg: 57P03, the server is starting up
        "AdminShutdownError",  # asyncpg: 57P01, the server is shutting down
        "CrashShutdownError",  # asyncpg: 57P02
        "TooManyConnectionsError",  # asyncpg: 53300
    }
)
"""Driver errors, by class name (the runner imports no driver), that mean "unreachable"."""


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says a store cannot be reached, rather than that an event is bad.

    Such a failure is not the event's: counting it as an attempt would park (or fault on)
    good events whenever a server restarts.
    """
    if isinstance(exc, _StoreFailed):
        return _unreachable(exc.error)
    if isinstance(exc, OSError):  # ConnectionRefusedError, TimeoutError, StoreUnavailable...
        return True
    return any(cls.__name__ in _OUTAGES for cls in type(exc).__mro__)


def _handles(projection: Projection[Any], recorded: RecordedEvent) -> bool:
    """``projection.handles_event``, also for an event that could not be decoded: by the
    class registered under its stored type, and for an unknown type, yes (whether the
    projection consumes it cannot be known, and it must not be skipped silently)."""
    event = recorded.event
    if type(event) is UndecodableEvent:
        return event.concerns(projection.handles)
    return projection.handles_event(recorded)


def _undecodable_at(projection: Projection[Any], events: Sequence[RecordedEvent]) -> int | None:
    """The index of the first event in ``events`` that ``projection`` would consume but
    that could not be decoded."""
    for index, recorded in enumerate(events):
        event = recorded.event
        if type(event) is UndecodableEvent and event.concerns(projection.handles):
            return index
    return None


def _raise_if_undecodable(recorded: RecordedEvent) -> None:
    event = recorded.event
    if type(event) is UndecodableEvent:
        raise event.error(recorded.stream_id, recorded.version, recorded.position)


def _describe(exc: BaseException, event: RecordedEvent) -> str:
    stored = event.event
    kind = stored.stored_type if isinstance(stored, UndecodableEvent) else stored.event_type
    # A decode error's own message names the event again; its reason is what is new.
    detail = exc.reason if isinstance(exc, EventDecodeError) else str(exc)
    return (
        f"{type(exc).__name__}: {detail} (event {kind} at {event.position}, "
        f"stream {event.stream_id!r} v{event.version})"
    )
