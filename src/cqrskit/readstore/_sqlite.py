"""The SQLite driver of the SQL read store: one file, WAL, a writer and a reader thread.

Each connection is confined to its own worker thread, so the event loop never blocks on
disk. Write transactions in this process take turns on an asyncio lock; ``BEGIN
IMMEDIATE`` and a busy timeout keep other processes writing the same file safe.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cqrskit._sqlite import ThreadConnection
from cqrskit.readstore.base import resolve_tables
from cqrskit.readstore.sql import (
    LIVE_TABLES_SQL,
    Row,
    RowCountMismatch,
    SqlDriver,
    SqlTransaction,
    Statement,
)


def _run_statements(db: sqlite3.Connection, statements: list[Statement]) -> None:
    for statement in statements:
        if len(statement.rows) == 1:
            count = db.execute(statement.sql, statement.rows[0]).rowcount
        else:
            count = db.executemany(statement.sql, statement.rows).rowcount
        if statement.expect_rows is not None and count != statement.expect_rows:
            raise RowCountMismatch(statement.sql)


def _rows(cursor: sqlite3.Cursor) -> list[Row]:
    return [dict(r) for r in cursor.fetchall()]


class _SqliteTransaction(SqlTransaction):
    def __init__(self, writer: ThreadConnection) -> None:
        self._writer = writer
        self.begun = False
        self.done = False

    def _begin(self, db: sqlite3.Connection) -> None:
        if not self.begun:
            db.execute("BEGIN IMMEDIATE")
            self.begun = True

    async def run(self, statements: list[Statement]) -> None:
        def work(db: sqlite3.Connection) -> None:
            self._begin(db)
            _run_statements(db, statements)

        await self._writer.run(work)

    async def fetch(self, pending: list[Statement], sql: str, params: Sequence[Any]) -> list[Row]:
        def work(db: sqlite3.Connection) -> list[Row]:
            self._begin(db)
            _run_statements(db, pending)
            return _rows(db.execute(sql, params))

        return await self._writer.run(work)

    async def commit(self, statements: list[Statement]) -> None:
        def work(db: sqlite3.Connection) -> None:
            self._begin(db)
            try:
                _run_statements(db, statements)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            finally:
                self.done = True

        await self._writer.run(work)

    async def rollback(self) -> None:
        def work(db: sqlite3.Connection) -> None:
            if db.in_transaction:
                db.execute("ROLLBACK")

        if self.begun and not self.done:
            self.done = True
            await self._writer.run(work)


class SqliteDriver(SqlDriver):
    """SQLite: its own file (not the event store's), WAL, ``synchronous=NORMAL`` by default.

    NORMAL is safe here: a read model and its checkpoint always commit together, so a power
    cut can only lose the last few batches, which the runner then projects again.
    """

    dialect = "sqlite"

    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._writer = ThreadConnection(
            str(target), synchronous, "cqrskit-readstore-writer", rows_as_mappings=True
        )
        self._reader = ThreadConnection(
            str(target), synchronous, "cqrskit-readstore-reader", rows_as_mappings=True
        )
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[SqlTransaction]:
        async with self._lock:
            tx = _SqliteTransaction(self._writer)
            try:
                yield tx
            finally:
                # Also on cancellation: the batch in flight rolls back whole. A committed
                # (or never begun) one has nothing to roll back: no task to shield it.
                if tx.begun and not tx.done:
                    await asyncio.shield(tx.rollback())

    async def query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        return await self._reader.run(lambda db: _rows(db.execute(sql, params)))

    async def query_live(self, projection: str, sql: str, params: Sequence[Any]) -> list[Row]:
        def work(db: sqlite3.Connection) -> list[Row]:
            # One read transaction: the table names and the rows come from one snapshot.
            db.execute("BEGIN")
            try:
                tables = {
                    r["logical"]: r["physical"] for r in db.execute(LIVE_TABLES_SQL, (projection,))
                }
                return _rows(db.execute(resolve_tables(sql, tables), params))
            finally:
                db.execute("COMMIT")

        return await self._reader.run(work)

    async def close(self) -> None:
        await self._writer.close()
        await self._reader.close()
