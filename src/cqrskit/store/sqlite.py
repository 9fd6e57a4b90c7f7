"""SQLite event store: the embedded default, one file, durable, WAL.

Each connection lives on a thread of its own; a whole append runs there as one
transaction in a single hop, so the event loop never waits on a half-done append. Appends
in this process queue for the one writer thread (SQLite has one writer at a time anyway),
and those queued together share a commit (``store/_sqlite_writer.py``); ``BEGIN
IMMEDIATE`` and a busy timeout keep other processes writing the same file safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from cqrskit._sqlite import SYNCHRONOUS_MODES, ThreadConnection
from cqrskit.errors import SchemaError
from cqrskit.messages import DomainEvent
from cqrskit.store._arguments import check_from_version, check_id, check_limit, check_position
from cqrskit.store._common import (
    EncodedAppend,
    EventStoreBase,
    decode_page,
    event_page,
    load_result,
)
from cqrskit.store._connect import SQLITE_OPEN_ERRORS, connecting
from cqrskit.store._sqlite_writer import (
    DEFAULT_MAX_GROUP,
    GroupCommitWriter,
    WriteStats,
    idempotency_result,
    max_position,
    stream_version,
)
from cqrskit.store.base import (
    START,
    AppendResult,
    EventPage,
    Idempotency,
    Position,
    RecordedEvent,
    Snapshot,
)
from cqrskit.store.serialization import EventRegistry

__all__ = ["SqliteEventStore", "WriteStats"]


Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_MIGRATIONS: Final = (
    """
    CREATE TABLE events (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        data TEXT NOT NULL,
        metadata TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        UNIQUE (stream_id, version)
    );
    CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        result TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );
    CREATE TABLE snapshots (
        stream_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        aggregate_type TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        state TEXT NOT NULL
    );
    """,
)

_SELECT_EVENT = (
    "SELECT stream_id, version, 0, position, event_type, schema_version, data, metadata, "
    "recorded_at FROM events"
)


_READ_ALL: Final = f"{_SELECT_EVENT} WHERE position > ? ORDER BY position LIMIT ?"
# Payloads of the events passed over stay in the file: NULL marks them (both columns are
# NOT NULL), so a projection pays neither for turning them into Python text nor decoding.
_READ_SOME: Final = (
    "WITH skipped(name) AS (SELECT value FROM json_each(?)) "
    "SELECT stream_id, version, 0, position, event_type, schema_version, "
    "CASE WHEN event_type IN skipped THEN NULL ELSE data END, "
    "CASE WHEN event_type IN skipped THEN NULL ELSE metadata END, "
    "recorded_at FROM events WHERE position > ? ORDER BY position LIMIT ?"
)


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        current = db.execute("PRAGMA user_version").fetchone()[0]
        if current > len(_MIGRATIONS):
            raise SchemaError(
                f"event store schema version {current} is newer than this cqrskit "
                f"understands ({len(_MIGRATIONS)})"
            )
        for number, script in enumerate(_MIGRATIONS[current:], start=current + 1):
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={number}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class SqliteEventStore(EventStoreBase):
    """Event store in one SQLite file. Open it with :meth:`open` (or ``open_event_store``)."""

    def __init__(
        self,
        registry: EventRegistry,
        path: Path,
        synchronous: Synchronous,
        poll_interval: float,
        max_group: int,
    ) -> None:
        super().__init__(registry)
        self._writer = GroupCommitWriter(
            str(path), synchronous, "cqrskit-sqlite-writer", self._written, max_group=max_group
        )
        self._reader = ThreadConnection(str(path), synchronous, "cqrskit-sqlite-reader")
        self._appended = START  # the last position this handle appended
        # Set (and dropped) when this handle appends; made only while someone waits.
        self._wakeup: asyncio.Event | None = None
        self._poll_interval = poll_interval

    @classmethod
    async def open(
        cls,
        path: str | Path,
        registry: EventRegistry,
        *,
        synchronous: Synchronous = "FULL",
        poll_interval: float = 1.0,
        max_group: int = DEFAULT_MAX_GROUP,
    ) -> SqliteEventStore:
        """Open (creating and migrating as needed) the event store in the file at ``path``.

        ``synchronous="FULL"`` makes every committed append durable across power loss;
        ``poll_interval`` bounds how late appends by *other processes* wake waiters.
        ``max_group`` bounds how many concurrent appends share one commit (group commit;
        each still succeeds or fails alone); 1 gives every append its own.
        A file that cannot be opened or created (a directory that cannot be made, no
        permission) raises :class:`~cqrskit.errors.StoreUnavailable`.
        """
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        target = Path(path)
        async with connecting("SQLite event store", str(target), SQLITE_OPEN_ERRORS):
            target.parent.mkdir(parents=True, exist_ok=True)
            store = cls(registry, target, synchronous, poll_interval, max_group)
            try:
                await store._writer.run(_migrate)
            except BaseException:
                await store.close()
                raise
        return store

    @property
    def write_stats(self) -> WriteStats:
        """How many appends this handle wrote, in how many commits (diagnostics)."""
        return self._writer.stats

    async def _append(
        self,
        appends: list[EncodedAppend],
        stream_order: list[str],
        idempotency: Idempotency | None,
    ) -> AppendResult:
        return await self._writer.append(appends, stream_order, idempotency)

    def _written(self, position: Position) -> None:
        """Called on the loop as each append's commit is handed back: wake the waiters."""
        if position.seq > self._appended.seq:  # commit is always 0 on SQLite
            self._appended = position
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    async def _read_events(
        self, sql: str, params: tuple[Any, ...], *, strict: bool
    ) -> list[RecordedEvent]:
        def read(db: sqlite3.Connection) -> list[RecordedEvent]:
            rows = db.execute(sql, params).fetchall()
            return decode_page(self.registry, rows, datetime.fromisoformat, strict=strict)

        return await self._reader.run(read)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """The events of one stream from ``from_version`` on, in version order."""
        self._ensure_open()
        check_id(stream_id, "a stream id")
        check_from_version(from_version)
        return await self._read_events(
            f"{_SELECT_EVENT} WHERE stream_id = ? AND version >= ? ORDER BY version",
            (stream_id, from_version),
            strict=True,
        )

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 when it does not exist."""
        self._ensure_open()
        check_id(stream_id, "a stream id")
        return await self._reader.run(lambda db: stream_version(db, stream_id))

    async def read_all(
        self,
        after: Position | str = START,
        limit: int = 1000,
        *,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        """Up to ``limit`` events after ``after`` (a position or a consistency token) in
        global order; with ``types``, only those of the covered events that are of them
        (the others' payloads are left out of the query's result)."""
        self._ensure_open()
        after = check_position(after)
        check_limit(limit)
        passed_over = self._passed_over(types)
        params: tuple[object, ...]
        if passed_over is None:
            sql, params = _READ_ALL, (after.seq, limit)
        else:
            sql, params = _READ_SOME, (orjson.dumps(passed_over).decode(), after.seq, limit)

        def read(db: sqlite3.Connection) -> EventPage:
            rows = db.execute(sql, params).fetchall()
            return event_page(
                self.registry,
                rows,
                after,
                datetime.fromisoformat,
                filtered=passed_over is not None,
            )

        return await self._reader.run(read)

    async def head(self) -> Position:
        """The position of the last event."""
        self._ensure_open()
        return Position(0, await self._reader.run(max_position))

    async def wait_for_events(self, after: Position | str, timeout: float) -> bool:
        """Wait until an event after ``after`` exists; false on timeout.

        Appends through this handle wake waiters at once; appends by other processes are
        noticed within ``poll_interval``.
        """
        self._ensure_open()
        after = check_position(after)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._appended > after or await self.head() > after:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            # Re-checked after taking the wake-up, with no await between: an append that
            # finished since the read above has already moved _appended, so its wake-up
            # cannot be missed.
            if self._wakeup is None:
                self._wakeup = asyncio.Event()
            wakeup = self._wakeup
            if self._appended > after:
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), min(remaining, self._poll_interval))

    async def find_idempotent(self, key: str) -> AppendResult | None:
        """The result of the append made with idempotency ``key``, if any."""
        self._ensure_open()
        check_id(key, "an idempotency key")
        text = await self._reader.run(lambda db: idempotency_result(db, key))
        return None if text is None else load_result(text)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing an older one of the same stream."""
        self._ensure_open()
        state = orjson.dumps(snapshot.state).decode()

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO snapshots (stream_id, version, aggregate_type, schema_version, "
                "state) VALUES (?, ?, ?, ?, ?) ON CONFLICT (stream_id) DO UPDATE SET "
                "version = excluded.version, aggregate_type = excluded.aggregate_type, "
                "schema_version = excluded.schema_version, state = excluded.state "
                "WHERE excluded.version > snapshots.version",
                (
                    snapshot.stream_id,
                    snapshot.version,
                    snapshot.aggregate_type,
                    snapshot.schema_version,
                    state,
                ),
            )

        await self._writer.run(write)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of the stream, if any."""
        self._ensure_open()

        def read(db: sqlite3.Connection) -> Snapshot | None:
            row = db.execute(
                "SELECT version, aggregate_type, schema_version, state FROM snapshots "
                "WHERE stream_id = ?",
                (stream_id,),
            ).fetchone()
            if row is None:
                return None
            return Snapshot(stream_id, row[0], row[1], row[2], orjson.loads(row[3]))

        return await self._reader.run(read)

    async def close(self) -> None:
        """Close both connections and their threads; waiters end with EventStoreClosed."""
        if self._closed:
            return
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None
        await self._writer.close()  # after the appends queued before: they finish first
        await self._reader.close()
