"""The event-store port: value types and the :class:`EventStore` protocol."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol, Self, runtime_checkable

from cqrskit.errors import ConcurrencyError
from cqrskit.messages import DomainEvent

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "AppendResult",
    "EventPage",
    "EventStore",
    "Idempotency",
    "Position",
    "RecordedEvent",
    "Snapshot",
    "StreamAppend",
    "check_expected_version",
]

ANY: Final = -1
"""Expected version that accepts any current version of the stream."""

NO_STREAM: Final = 0
"""Expected version that requires the stream not to exist yet."""


_TOKEN: Final = re.compile(r"(?:(?P<commit>[0-9]{1,20}):)?(?P<seq>[0-9]{1,20})", re.ASCII)
_MAX_BIGINT: Final = 2**63 - 1


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in the global order of all events.

    Ordered by ``(commit, seq)``. On PostgreSQL ``commit`` is the writing transaction's id
    and ``seq`` the global position; backends that commit in order leave ``commit`` at 0.
    ``str(position)`` is the consistency token handed to clients; :meth:`parse` reads it.
    """

    commit: int
    seq: int

    def __str__(self) -> str:
        return str(self.seq) if self.commit == 0 else f"{self.commit}:{self.seq}"

    @classmethod
    def parse(cls, token: str) -> Self:
        """Read a token made by ``str(position)``; raises ``ValueError`` on anything else."""
        match = _TOKEN.fullmatch(token.strip())
        if match is None:
            raise ValueError(f"not a consistency token: {token!r}")
        commit, seq = match.group("commit"), match.group("seq")
        result = cls(int(commit) if commit else 0, int(seq))
        if result.commit > _MAX_BIGINT or result.seq > _MAX_BIGINT:
            raise ValueError(f"not a consistency token (out of range): {token!r}")
        return result


START: Final = Position(0, 0)
"""The position before the first event."""


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Events to append to one stream, guarded by the version the writer expects."""

    stream_id: str
    events: Sequence[DomainEvent]
    expected_version: int = ANY


@dataclass(frozen=True, slots=True)
class Idempotency:
    """Makes an append idempotent: a second append with the same ``key`` writes nothing.

    ``result_id`` is what the original caller answered (for a command, the id of the
    aggregate it created or changed); it is stored with the key and returned on replays.
    """

    key: str
    result_id: str = ""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append wrote: each stream's new version and the position of its last event.

    ``replayed`` is true when an earlier append with the same idempotency key was found and
    nothing was written; the versions and position are then those of that earlier append.
    """

    versions: dict[str, int]
    position: Position
    result_id: str = ""
    replayed: bool = False

    @property
    def version(self) -> int:
        """The new version of the only (or first) stream written."""
        return next(iter(self.versions.values()), 0)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: where it sits in its stream and in the global order."""

    stream_id: str
    version: int
    position: Position
    event: DomainEvent
    recorded_at: datetime


class EventPage(list[RecordedEvent]):
    """What ``read_all`` and ``next_events`` return: the events read, in global order (it
    is a list of them), and how far the read reached in the store.

    A read covers up to ``limit`` stored events; with ``types`` it returns only those of
    the types asked for, so ``end`` and ``scanned`` are how a reader learns where to go
    on from, and whether it has reached the last readable event, when few or none of the
    events it covered were returned.
    """

    __slots__ = ("end", "scanned")

    end: Position
    """The position of the last stored event the read covered, returned or passed over
    (``after`` when it covered none): where the next read goes on from."""
    scanned: int
    """How many stored events the read covered: fewer than ``limit`` when it reached the
    last readable event."""

    def __init__(self, events: Iterable[RecordedEvent] = (), *, end: Position, scanned: int):
        super().__init__(events)
        self.end = end
        self.scanned = scanned


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state at a stream version, so loading can skip earlier events."""

    stream_id: str
    version: int
    aggregate_type: str
    schema_version: int = 1
    state: dict[str, object] = field(default_factory=dict)


def check_expected_version(stream_id: str, expected: int, actual: int) -> None:
    """Raise :class:`ConcurrencyError` unless ``actual`` satisfies ``expected``."""
    if expected == ANY:
        return
    if expected < ANY:
        raise ValueError(f"expected version must be ANY, NO_STREAM or >= 1, got {expected}")
    if expected != actual:
        raise ConcurrencyError(stream_id, expected, actual)


@runtime_checkable
class EventStore(Protocol):
    """Append-only storage of event streams with a global order.

    Every backend passes :class:`cqrskit.testing.EventStoreContract`, and refuses the same
    bad argument alike, before any I/O: ``TypeError`` for a wrong kind of argument,
    ``ValueError`` for a bad value (a stream id or idempotency key that is empty, holds a
    NUL or a lone surrogate, or is longer than 1000 UTF-8 bytes; an expected version,
    ``from_version`` or ``limit`` out of range), :class:`~cqrskit.errors.EventEncodingError`
    for an event it could not read back.
    """

    async def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        expected_version: int = ANY,
        *,
        idempotency: Idempotency | None = None,
    ) -> AppendResult:
        """Append ``events`` to one stream if it is at ``expected_version``."""
        ...

    async def append_many(
        self, appends: Sequence[StreamAppend], *, idempotency: Idempotency | None = None
    ) -> AppendResult:
        """Append to several streams in one transaction: all or nothing."""
        ...

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """The events of one stream from ``from_version`` on, in version order.

        Raises :class:`~cqrskit.errors.EventDecodeError` for an event that cannot be
        decoded: an aggregate cannot be loaded from part of its history.
        """
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 when it does not exist."""
        ...

    async def read_all(
        self,
        after: Position | str = START,
        limit: int = 1000,
        *,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        """Up to ``limit`` events after ``after`` in global order.

        ``after`` is a :class:`Position` or a consistency token (``str(position)``, as
        handed to clients); a malformed token raises ``ValueError``. Never skips an event:
        an event that becomes readable later always sorts after every position this call
        returned. An event that cannot be decoded is returned in its place, with an
        :class:`~cqrskit.store.UndecodableEvent` (stored form and error) as its ``event``,
        so that one bad event fails only itself.

        ``types`` (event classes) reads only the events of those classes and their
        registered subclasses: the read still covers the next ``limit`` stored events,
        but the others are neither decoded nor (on SQLite and PostgreSQL) their payloads
        fetched, and the page's :attr:`~EventPage.end` tells how far it reached. An event
        whose stored type the registry does not know is returned all the same (as an
        ``UndecodableEvent``): whether it is of those types cannot be told.
        """
        ...

    async def head(self) -> Position:
        """The position of the last readable event (``START`` when there is none)."""
        ...

    async def wait_for_events(self, after: Position | str, timeout: float) -> bool:
        """Wait until an event after ``after`` (a position or a consistency token) is
        readable; false when ``timeout`` ran out."""
        ...

    async def next_events(
        self,
        after: Position | str,
        limit: int = 1000,
        *,
        timeout: float,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        """What ``read_all(after, limit, types=types)`` returns once an event after
        ``after`` is readable, waiting up to ``timeout`` for one; an empty page ending at
        ``after`` when none became readable in time.

        A live reader's loop in one call, which a backend may serve in fewer round trips
        than waiting and then reading. With ``types``, any readable event ends the wait,
        so the page may hold no events but end further on.
        """
        ...

    async def find_idempotent(self, key: str) -> AppendResult | None:
        """The result of the append made with idempotency ``key``, if there was one."""
        ...

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing an older one of the same stream."""
        ...

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of the stream, if any."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks."""
        ...
