"""In-memory read store: test projections and query handlers without any server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cqrskit._signal import Signal
from cqrskit.readstore.base import (
    CHANGED,
    CheckpointConflict,
    ParkedEvent,
    ProjectionSpec,
    ReadTransaction,
    SetupHook,
    check_projection,
    check_projection_name,
    no_parked_event,
    stored_form,
    wait_with_signal,
)
from cqrskit.store.base import START, Position

__all__ = ["MemoryReadStore", "MemoryUnitOfWork"]

Row = dict[str, Any]
_DELETED: Any = object()


@dataclass
class _Version:
    checkpoint: Position = START
    tables: dict[str, dict[str, Row]] = field(default_factory=dict)
    parked: dict[str, ParkedEvent] = field(default_factory=dict)


class MemoryUnitOfWork:
    """Tables of rows keyed by a string; writes are staged until the transaction commits.

    Reads see the transaction's own staged writes, like a SQL transaction does.
    """

    def __init__(self, tables: dict[str, dict[str, Row]]) -> None:
        self._tables = tables
        self._staged: dict[tuple[str, str], Row] = {}

    def get(self, table: str, key: str) -> Row | None:
        """The row at ``key``, or ``None``."""
        staged = self._staged.get((table, key))
        if staged is not None:
            return None if staged is _DELETED else dict(staged)
        row = self._tables.get(table, {}).get(key)
        return None if row is None else dict(row)

    def put(self, table: str, key: str, row: Row) -> None:
        """Insert or replace the row at ``key``."""
        self._staged[(table, key)] = dict(row)

    def merge(self, table: str, key: str, values: Row) -> None:
        """Insert the row or update the given fields of an existing one (an UPSERT)."""
        self.put(table, key, {**(self.get(table, key) or {}), **values})

    def increment(self, table: str, key: str, column: str, amount: int = 1) -> int:
        """Add ``amount`` to a numeric column (missing rows and columns count as 0)."""
        row = self.get(table, key) or {}
        row[column] = int(row.get(column, 0)) + amount
        self.put(table, key, row)
        return int(row[column])

    def delete(self, table: str, key: str) -> None:
        """Remove the row at ``key`` (no error if absent)."""
        self._staged[(table, key)] = _DELETED

    def _apply(self) -> None:
        for (table, key), row in self._staged.items():
            rows = self._tables.setdefault(table, {})
            if row is _DELETED:
                rows.pop(key, None)
            else:
                rows[key] = row


class MemoryReadStore:
    """Read models in process memory; same semantics as the durable read stores."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, int], _Version] = {}
        self._live: dict[str, int] = {}
        self._signal = Signal()
        self._controls: dict[tuple[str, str], tuple[str, datetime]] = {}

    async def prepare(self, projection: ProjectionSpec, setup: SetupHook[MemoryUnitOfWork]) -> bool:
        """Register a projection version (and make it live if it is the first).

        Names are checked as on every other store (see
        :func:`~cqrskit.readstore.base.check_projection`), so a projection tested here
        runs unchanged on SQL and Redis.
        """
        check_projection(projection)
        key = (projection.name, projection.version)
        if key in self._versions:
            return False
        state = _Version()
        uow = MemoryUnitOfWork(state.tables)
        await setup(uow)
        uow._apply()
        self._versions[key] = state
        self._live.setdefault(projection.name, projection.version)
        self._signal.fire({projection.name: CHANGED})
        return True

    def _state(self, projection: str, version: int) -> _Version:
        try:
            return self._versions[(projection, version)]
        except KeyError:
            raise LookupError(f"projection {projection} v{version} was not prepared") from None

    @asynccontextmanager
    async def transaction(
        self, projection: ProjectionSpec, expected: Position | None
    ) -> AsyncIterator[ReadTransaction[MemoryUnitOfWork]]:
        """A transaction over one projection version; applied at once on success."""
        state = self._state(projection.name, projection.version)
        tx = ReadTransaction(MemoryUnitOfWork(state.tables))
        yield tx
        # From here to the end there is no await: the commit is atomic for other tasks.
        if expected is not None and state.checkpoint != expected:
            raise CheckpointConflict(
                projection.name, projection.version, expected, state.checkpoint
            )
        # Unparking is a guard: an id no longer parked (another retry won) fails it all.
        unparked: set[str] = set()
        for parked_id in tx.unparked:
            if parked_id not in state.parked or parked_id in unparked:
                raise no_parked_event(projection.name, projection.version, parked_id)
            unparked.add(parked_id)
        tx.uow._apply()
        now = datetime.now(UTC)
        for event, error, attempts in tx.parked:
            form = stored_form(event)
            parked = ParkedEvent(
                str(event.position),
                projection.name,
                projection.version,
                event.position,
                event.stream_id,
                event.version,
                form.event_type,
                error,
                attempts,
                now,
                form.schema_version,
                form.data,
                form.metadata,
            )
            state.parked[parked.id] = parked
        for failed, error in tx.retry_failures:
            current = state.parked.get(failed.id)
            if current is not None:
                state.parked[failed.id] = replace(
                    current, error=error, attempts=current.attempts + 1
                )
        for parked_id in tx.unparked:
            del state.parked[parked_id]
        if tx.new_checkpoint is not None:
            state.checkpoint = tx.new_checkpoint
        if tx.switch_live:
            self._live[projection.name] = projection.version
        self._signal.fire({projection.name: CHANGED})

    async def checkpoint(self, projection: str, version: int) -> Position | None:
        """The checkpoint of one projection version."""
        state = self._versions.get((projection, version))
        return None if state is None else state.checkpoint

    async def live_version(self, projection: str) -> int | None:
        """The version readers use."""
        return self._live.get(projection)

    async def live_checkpoint(self, projection: str) -> Position | None:
        """The checkpoint of the version readers use."""
        version = self._live.get(projection)
        return None if version is None else await self.checkpoint(projection, version)

    async def wait_for_checkpoint(
        self, projection: str, position: Position, timeout: float
    ) -> Position | None:
        """Wait until the live checkpoint reaches ``position``; return the last one seen."""
        return await wait_with_signal(
            self._signal, self.live_checkpoint, projection, position, timeout
        )

    async def parked_events(self, projection: str, version: int | None = None) -> list[ParkedEvent]:
        """Parked events of a projection version (the live one by default), oldest first."""
        version = self._live.get(projection) if version is None else version
        state = self._versions.get((projection, version or 0))
        if state is None:
            return []
        return sorted(state.parked.values(), key=lambda p: p.position)

    async def parked_count(self, projection: str, version: int) -> int:
        """How many events a projection version has parked."""
        state = self._versions.get((projection, version))
        return 0 if state is None else len(state.parked)

    async def drop_version(self, projection: str, version: int) -> None:
        """Forget a version's read model, checkpoint and parked events."""
        check_projection_name(projection)
        if self._live.get(projection) == version:
            raise ValueError(f"{projection} v{version} is live; switch before dropping it")
        self._versions.pop((projection, version), None)

    async def put_control(self, projection: str, kind: str, value: str) -> None:
        """Keep a control record (see :meth:`ReadStore.put_control`)."""
        self._controls[(projection, kind)] = (value, datetime.now(UTC))

    async def controls(self, kind: str) -> dict[str, tuple[str, datetime]]:
        """Every projection's control record of ``kind``."""
        return {p: record for (p, k), record in self._controls.items() if k == kind}

    async def take_control(self, projection: str, kind: str) -> str | None:
        """Remove and return a control record."""
        record = self._controls.pop((projection, kind), None)
        return None if record is None else record[0]

    def rows(self, projection: str, table: str) -> dict[str, Row]:
        """Readers' view: a copy of the live version's ``table``."""
        version = self._live.get(projection)
        if version is None:
            return {}
        state = self._versions[(projection, version)]
        return {k: dict(v) for k, v in state.tables.get(table, {}).items()}

    def get(self, projection: str, table: str, key: str) -> Row | None:
        """Readers' view: one row of the live version's ``table``."""
        return self.rows(projection, table).get(key)

    def versions(self) -> Iterator[tuple[str, int]]:
        """The (projection, version) pairs stored, for tests and diagnostics."""
        return iter(list(self._versions))

    async def close(self) -> None:
        """Nothing to release."""
