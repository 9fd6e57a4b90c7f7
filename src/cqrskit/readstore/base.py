"""The read-store port: where projections keep read models, checkpoints and parked events.

A read store hands a projection a *transaction*: the projection writes its effects through
the transaction's unit of work (``tx.uow``), the runner moves the checkpoint (and may park
an event or switch the live version), and everything commits together or not at all.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Generic, Protocol, TypeVar, runtime_checkable

from cqrskit._signal import Signal
from cqrskit.errors import CqrsError
from cqrskit.store.base import Position, RecordedEvent
from cqrskit.store.serialization import UndecodableEvent

__all__ = [
    "MAX_TABLE_NAME_BYTES",
    "CheckpointConflict",
    "ParkedEvent",
    "ProjectionSpec",
    "ReadStore",
    "ReadTransaction",
    "SetupHook",
    "StoredForm",
    "check_name",
    "check_projection",
    "no_parked_event",
    "physical_table",
    "stored_form",
]

U = TypeVar("U")
U_co = TypeVar("U_co", covariant=True)

SetupHook = Callable[[U], Awaitable[None]]
"""Creates a projection version's storage (e.g. ``CREATE TABLE {orders} ...``)."""


class CheckpointConflict(CqrsError):
    """The checkpoint moved under a transaction: another runner owns the projection now.

    The transaction was rolled back; its effects were not applied.
    """

    def __init__(self, projection: str, version: int, expected: Position, actual: Position | None):
        self.projection = projection
        self.version = version
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"checkpoint of {projection} v{version} is {actual}, expected {expected}: "
            "another runner is processing this projection"
        )


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """An event a projection could not handle, kept with its error for a later retry.

    ``id`` is the event's position token: unique per projection version. ``error`` is the
    last error (updated when a retry fails), ``attempts`` how many times it was tried.
    For an event that could not be decoded (an
    :class:`~cqrskit.store.UndecodableEvent`), the raw stored form is kept as well:
    ``schema_version``, ``data`` and ``metadata`` (JSON texts as stored); they are
    ``None`` for an event that decoded but whose handling failed.
    """

    id: str
    projection: str
    version: int
    position: Position
    stream_id: str
    stream_version: int
    event_type: str
    error: str
    attempts: int
    parked_at: datetime
    schema_version: int | None = None
    data: str | None = None
    metadata: str | None = None

    @property
    def undecodable(self) -> bool:
        """Whether it was parked because it could not be decoded."""
        return self.data is not None


@dataclass(frozen=True, slots=True)
class StoredForm:
    """What a read store keeps of a parked event besides its place and error."""

    event_type: str
    schema_version: int | None = None
    data: str | None = None
    metadata: str | None = None


def stored_form(recorded: RecordedEvent) -> StoredForm:
    """The event type of ``recorded``, plus its raw stored form if it was undecodable."""
    event = recorded.event
    if isinstance(event, UndecodableEvent):
        return StoredForm(
            event.stored_type,
            event.stored_schema_version,
            event.stored_data,
            event.stored_metadata,
        )
    return StoredForm(event.event_type)


class ProjectionSpec(Protocol):
    """What a read store needs to know about a projection to prepare and address it."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def tables(self) -> Sequence[str]: ...


_TABLE_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


# Lowercase words of letters and digits joined by single underscores: no "__" (the
# separator in physical table names) and no leading or trailing "_" (which would form one
# next to the separator: "a_" + "__" + "b" == "a" + "__" + "_b").
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")

MAX_TABLE_NAME_BYTES = 63
"""PostgreSQL's identifier limit: longer names are silently truncated (and may collide)."""


def check_name(kind: str, name: str) -> None:
    """Projection and logical table names: plain identifiers that cannot collide.

    Physical tables are ``{projection}__{logical}_v{version}``, so a name may not contain
    ``__`` nor start or end with ``_``; then no two (projection, table) pairs share one.
    """
    if not _NAME.match(name):
        raise ValueError(
            f"{kind} name {name!r} must match [a-z][a-z0-9]*(_[a-z0-9]+)*: lowercase "
            "letters, digits and single underscores, starting with a letter (no '__', no "
            "leading or trailing '_')"
        )


RESERVED_PROJECTION_NAMES: Final = frozenset({"checkpoint", "control", "parked"})
"""Names the Redis read store uses for its own key spaces (``{prefix}parked:...``): a
projection of that name would share them. Refused on every store, so that projections
stay portable."""


def check_projection_name(name: str) -> None:
    """A projection name: :func:`check_name`, and not one of the reserved names."""
    check_name("projection", name)
    if name in RESERVED_PROJECTION_NAMES:
        raise ValueError(
            f"projection name {name!r} is reserved (the read stores use "
            f"{', '.join(sorted(RESERVED_PROJECTION_NAMES))} for their own keys)"
        )


def check_projection(projection: ProjectionSpec) -> None:
    """Check a projection's names and that its physical table names fit in 63 bytes."""
    check_projection_name(projection.name)
    for logical in projection.tables:
        check_name("table", logical)
    for logical in projection.tables:
        physical = physical_table(projection.name, logical, projection.version)
        size = len(physical.encode())
        if size > MAX_TABLE_NAME_BYTES:
            raise ValueError(
                f"table {logical!r} of projection {projection.name} v{projection.version} "
                f"would be named {physical!r} ({size} bytes), over the "
                f"{MAX_TABLE_NAME_BYTES}-byte limit of PostgreSQL identifiers: "
                "use a shorter projection or table name"
            )


def physical_table(projection: str, logical: str, version: int) -> str:
    """The real name of a projection's logical table at one version (``orders`` -> ...)."""
    return f"{projection}__{logical}_v{version}"


def no_parked_event(projection: str, version: int, parked_id: str) -> LookupError:
    """The error for unparking an id that is not (or no longer) parked."""
    return LookupError(f"no parked event {parked_id!r} for {projection} v{version}")


def resolve_tables(sql: str, tables: Mapping[str, str]) -> str:
    """Replace ``{logical}`` placeholders naming known tables; leave other braces alone."""

    def sub(match: re.Match[str]) -> str:
        return tables.get(match.group(1), match.group(0))

    return _TABLE_PLACEHOLDER.sub(sub, sql)


class ReadTransaction(Generic[U_co]):
    """One batch's transaction: the projection's writes plus the runner's bookkeeping.

    Nothing is applied until the transaction commits; on an exception it rolls back whole.
    The read store that opens it applies the bookkeeping recorded here at commit.
    """

    def __init__(self, uow: U_co) -> None:
        self._uow = uow
        self.new_checkpoint: Position | None = None
        self.parked: list[tuple[RecordedEvent, str, int]] = []
        self.unparked: list[str] = []
        self.retry_failures: list[tuple[ParkedEvent, str]] = []
        self.switch_live = False

    @property
    def uow(self) -> U_co:
        """The unit of work the projection writes its effects through."""
        return self._uow

    def advance_to(self, position: Position) -> None:
        """Commit the checkpoint at ``position`` with this transaction."""
        self.new_checkpoint = position

    def park(self, event: RecordedEvent, error: str, attempts: int) -> None:
        """Record ``event`` as parked (dead-lettered) with this transaction."""
        self.parked.append((event, error, attempts))

    def unpark(self, parked_id: str) -> None:
        """Remove a parked event with this transaction (it was retried or discarded).

        A guard: the commit fails with :class:`LookupError` (and applies nothing) unless
        the event is still parked then, so two concurrent retries cannot both apply it.
        """
        self.unparked.append(parked_id)

    def record_failure(self, parked: ParkedEvent, error: str) -> None:
        """Keep ``error`` as a parked event's last error and count one more attempt, if it
        is still parked at commit (otherwise nothing: it was retried or discarded)."""
        self.retry_failures.append((parked, error))

    def go_live(self) -> None:
        """Make this transaction's projection version the one readers use, atomically."""
        self.switch_live = True


@runtime_checkable
class ReadStore(Protocol[U_co]):
    """Storage for read models, checkpoints and parked events.

    Every backend passes :class:`cqrskit.projection.testing.ProjectionContract`.
    """

    async def prepare(self, projection: ProjectionSpec, setup: SetupHook[U_co]) -> bool:
        """Create the bookkeeping and, once, the projection version's storage.

        ``setup`` runs in the same transaction the first time this version is seen; returns
        true then. The first version ever prepared for a projection name becomes live.
        """
        ...

    def transaction(
        self, projection: ProjectionSpec, expected: Position | None
    ) -> AbstractAsyncContextManager[ReadTransaction[U_co]]:
        """Begin a transaction for one projection version.

        When ``expected`` is given, the commit fails with :class:`CheckpointConflict` unless
        the stored checkpoint still equals it (so two runners can never both apply a batch).
        """
        ...

    async def checkpoint(self, projection: str, version: int) -> Position | None:
        """The checkpoint of one projection version; ``None`` if it was never prepared."""
        ...

    async def live_version(self, projection: str) -> int | None:
        """The version readers use; ``None`` before the projection was first prepared."""
        ...

    async def live_checkpoint(self, projection: str) -> Position | None:
        """The checkpoint of the version readers use."""
        ...

    async def wait_for_checkpoint(
        self, projection: str, position: Position, timeout: float
    ) -> Position | None:
        """Wait until the live checkpoint reaches ``position``; return the last one seen."""
        ...

    async def parked_events(self, projection: str, version: int | None = None) -> list[ParkedEvent]:
        """Parked events of a projection version (the live one by default), oldest first."""
        ...

    async def parked_count(self, projection: str, version: int) -> int:
        """How many events a projection version has parked (without reading them)."""
        ...

    async def drop_version(self, projection: str, version: int) -> None:
        """Delete a (no longer live) version's read model, checkpoint and parked events."""
        ...

    async def put_control(self, projection: str, kind: str, value: str) -> None:
        """Keep ``value`` as the projection's control record of ``kind`` (replacing one).

        Control records are how runners and operators talk across processes: published
        statuses, rebuild requests, which code version built which stored version.
        """
        ...

    async def controls(self, kind: str) -> dict[str, tuple[str, datetime]]:
        """Every projection's control record of ``kind``: value and when it was written."""
        ...

    async def take_control(self, projection: str, kind: str) -> str | None:
        """Remove and return the projection's control record of ``kind``, if any; of two
        concurrent takers only one gets it."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks."""
        ...


class _Changed:
    """News of a commit that moved a projection's checkpoint, to a value not told."""

    def __repr__(self) -> str:
        return "CHANGED"


CHANGED: Final = _Changed()
"""Signal news ``{projection: CHANGED}``: that projection committed; its waiters read the
checkpoint, the waiters of other projections need not (see :func:`wait_with_signal`)."""

CheckpointNews = dict[str, "Position | _Changed | None"]
"""What a checkpoint notification says, projection by projection (see
:func:`wait_with_signal`)."""


async def wait_with_signal(
    signal: Signal,
    read: _CheckpointReader,
    projection: str,
    position: Position,
    timeout: float,
    poll_interval: float | None = None,
) -> Position | None:
    """The shared waiting loop: re-read the live checkpoint on every signal until reached.

    A firing whose news carries this projection's new live checkpoint (PostgreSQL NOTIFY
    payloads) is as good as a read: it ends the wait when it reaches ``position``, and
    otherwise the wait goes on without reading; news of ``None`` for this projection (a
    commit to a version readers do not use) changes nothing.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    changed = signal.current()
    known = await read(projection)
    while True:
        if known is not None and known >= position:
            return known
        remaining = deadline - loop.time()
        if remaining <= 0:
            return known
        if poll_interval is not None:
            remaining = min(remaining, poll_interval)
        try:
            await asyncio.wait_for(changed.wait(), remaining)
        except TimeoutError:
            if loop.time() >= deadline:
                return await read(projection)
        # Go through every firing since the last look. One without news (a commit in this
        # process, a reconnect, a heartbeat, the poll interval running out) means "read";
        # news about other projections says nothing about this one.
        stale = not changed.is_set()
        while changed.is_set():
            if not changed.news:
                stale = True
            news = changed.news.get(projection)
            if news is CHANGED:
                stale = True
            elif news is not None and (known is None or news > known):
                known = news
            assert changed.next is not None
            changed = changed.next
        if stale:
            known = await read(projection)


class _CheckpointReader(Protocol):
    async def __call__(self, projection: str, /) -> Position | None: ...
