"""The SQLite event store's append path: group commit on the writer connection's thread.

With ``synchronous=FULL`` every commit waits for an fsync of the WAL, which costs more than
all the statements of a small append together. Appends that queue up while a commit is in
flight therefore share the next transaction, and its one fsync: each inside a SAVEPOINT,
so that each keeps its own version checks and idempotency lookup (which see the writes of
the appends before it in the group) and fails, or replays, alone. The result of an append
is handed back only after the COMMIT of its group returned, so durability is that of one
transaction per append.

A group is whatever was queued when the writer thread became free, up to
``max_group`` appends: an append never waits for company, only (at most) for the
commit in flight, which is one group's worth of work.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cqrskit._sqlite import Job, ThreadConnection
from cqrskit.store._common import EncodedAppend, dump_result, load_result
from cqrskit.store.base import AppendResult, Idempotency, Position, check_expected_version

__all__ = [
    "DEFAULT_MAX_GROUP",
    "GroupCommitWriter",
    "WriteStats",
    "idempotency_result",
    "max_position",
    "stream_version",
]

DEFAULT_MAX_GROUP: Final = 64
"""Appends that may share one transaction. Measured on 2 cores: 16 and 64 concurrent
writers form groups of ~10-40; a larger bound only makes the rare huge group slower."""

_INSERT: Final = (
    "INSERT INTO events (stream_id, version, event_type, schema_version, data, metadata, "
    "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class WriteStats:
    """Counts of the appends this store handle wrote, for diagnostics and tests.

    ``commits`` is the number of append transactions committed (each one fsync with
    ``synchronous=FULL``); below ``appends`` when concurrent appends shared commits.
    """

    appends: int
    commits: int
    largest_group: int


def stream_version(db: sqlite3.Connection, stream_id: str) -> int:
    """The stream's current version, 0 when it has no events."""
    row = db.execute("SELECT MAX(version) FROM events WHERE stream_id = ?", (stream_id,)).fetchone()
    return int(row[0] or 0)


def max_position(db: sqlite3.Connection) -> int:
    """The global position of the last event, 0 when there is none."""
    return int(db.execute("SELECT MAX(position) FROM events").fetchone()[0] or 0)


def idempotency_result(db: sqlite3.Connection, key: str) -> str | None:
    """The stored result of the append made with idempotency ``key``, if any."""
    row = db.execute("SELECT result FROM idempotency WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


class _AppendJob(Job[AppendResult]):
    __slots__ = ("appends", "idempotency", "on_written", "stream_order")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        appends: list[EncodedAppend],
        stream_order: list[str],
        idempotency: Idempotency | None,
        on_written: Callable[[Position], None],
    ) -> None:
        super().__init__(loop)
        self.appends = appends
        self.stream_order = stream_order
        self.idempotency = idempotency
        self.on_written = on_written

    def execute(self, db: sqlite3.Connection) -> None:
        raise AssertionError("appends run in groups, by GroupCommitWriter.run_batch")

    def deliver(self) -> None:
        # Before the caller resumes, so that it finds its own events already signalled;
        # also when it gave up waiting (cancelled), since its events are committed.
        value = self.value
        if value is not None and not value.replayed and any(a.events for a in self.appends):
            self.on_written(value.position)
        super().deliver()


class GroupCommitWriter(ThreadConnection):
    """The writer connection of a SQLite event store: appends queued at the same time
    share one transaction (see the module's docstring); other work runs alone, in order."""

    def __init__(
        self,
        path: str,
        synchronous: str,
        name: str,
        on_written: Callable[[Position], None],
        *,
        max_group: int = DEFAULT_MAX_GROUP,
    ) -> None:
        if type(max_group) is not int or max_group < 1:
            raise ValueError(f"max_group must be an int >= 1, got {max_group!r}")
        super().__init__(path, synchronous, name)
        self.max_batch = max_group
        self._on_written = on_written
        # Written by the writer thread only; read anywhere (ints: no torn reads).
        self._appends = 0
        self._commits = 0
        self._largest_group = 0

    @property
    def stats(self) -> WriteStats:
        """Appends written, commits made for them and the largest group so far."""
        return WriteStats(self._appends, self._commits, self._largest_group)

    def append(
        self,
        appends: list[EncodedAppend],
        stream_order: list[str],
        idempotency: Idempotency | None,
    ) -> asyncio.Future[AppendResult]:
        """Queue an append; the future resolves once its group is committed (or it failed)."""
        loop = asyncio.get_running_loop()
        return self.submit(_AppendJob(loop, appends, stream_order, idempotency, self._on_written))

    def run_batch(self, db: sqlite3.Connection, batch: list[Job[Any]]) -> None:
        """Run consecutive appends of ``batch`` as groups, anything else alone, in order."""
        group: list[_AppendJob] = []
        for job in batch:
            if isinstance(job, _AppendJob):
                group.append(job)
                continue
            if group:
                self._commit_group(db, group)
                group = []
            job.execute(db)
        if group:
            self._commit_group(db, group)

    def _commit_group(self, db: sqlite3.Connection, group: list[_AppendJob]) -> None:
        now = datetime.now(UTC).isoformat()
        try:
            db.execute("BEGIN IMMEDIATE")
            if len(group) == 1:
                # Alone, the transaction is the append's own: no savepoint needed.
                job = group[0]
                job.value = write_append(db, job.appends, job.stream_order, job.idempotency, now)
            else:
                for job in group:
                    _write_in_savepoint(db, job, now)
            db.execute("COMMIT")
        except BaseException as exc:
            # Nothing of the group is written: every append in it fails with the cause
            # (a conflict of a lone append, or what failed the whole transaction).
            if db.in_transaction:
                db.execute("ROLLBACK")
            for job in group:
                job.value, job.error = None, exc
        else:
            self._commits += 1
        self._appends += len(group)
        self._largest_group = max(self._largest_group, len(group))


def _write_in_savepoint(db: sqlite3.Connection, job: _AppendJob, now: str) -> None:
    db.execute("SAVEPOINT append")
    try:
        job.value = write_append(db, job.appends, job.stream_order, job.idempotency, now)
    except Exception as exc:
        if not db.in_transaction:
            raise  # SQLite rolled the whole transaction back (I/O error, disk full)
        db.execute("ROLLBACK TO append")
        job.error = exc
    db.execute("RELEASE append")


def write_append(
    db: sqlite3.Connection,
    appends: list[EncodedAppend],
    stream_order: list[str],
    idempotency: Idempotency | None,
    now: str,
) -> AppendResult:
    """Write one append in the current transaction: its idempotency lookup, its version
    checks (all before the first write), its events and its idempotency record."""
    if idempotency is not None:
        earlier = idempotency_result(db, idempotency.key)
        if earlier is not None:
            return load_result(earlier)
    versions: dict[str, int] = {}
    for append in appends:
        current = stream_version(db, append.stream_id)
        check_expected_version(append.stream_id, append.expected_version, current)
        versions[append.stream_id] = current
    rows = []
    for append in appends:
        start = versions[append.stream_id]
        for offset, event in enumerate(append.events, start=1):
            rows.append(
                (
                    append.stream_id,
                    start + offset,
                    event.event_type,
                    event.schema_version,
                    event.data,
                    event.metadata,
                    now,
                )
            )
        versions[append.stream_id] = start + len(append.events)
    if len(rows) == 1:
        # The common single-event append learns its position from the insert itself.
        position = db.execute(_INSERT, rows[0]).lastrowid or max_position(db)
    else:
        if rows:
            db.executemany(_INSERT, rows)
        position = max_position(db)
    result = AppendResult(
        versions={s: versions[s] for s in stream_order},
        position=Position(0, position),
        result_id=idempotency.result_id if idempotency else "",
    )
    if idempotency is not None:
        db.execute(
            "INSERT INTO idempotency (key, result, recorded_at) VALUES (?, ?, ?)",
            (idempotency.key, dump_result(result), now),
        )
    return result
