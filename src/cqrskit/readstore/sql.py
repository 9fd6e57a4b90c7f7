"""SQL read store: one implementation for SQLite and PostgreSQL, over a small driver.

Projection SQL is written once for both databases: ``?`` placeholders (turned into
``$1, $2, ...`` for PostgreSQL) and ``{table}`` placeholders naming the projection's
logical tables (resolved to the physical table of the version being written or read).
``INSERT ... ON CONFLICT (...) DO UPDATE SET ...`` is the portable UPSERT.

Writes made through :class:`SqlUnitOfWork` are buffered and sent together (consecutive
statements with the same text become one ``executemany``), so a projection may write row
by row without paying a round trip per row. A ``fetch`` sends the buffer first, so reads
inside a transaction always see its own writes.

The driver interface is in ``_sql_driver``, the store's own tables and bookkeeping
statements in ``_sql_bookkeeping``, control records in ``_sql_control`` and snapshots in
``_sql_snapshot``; what other modules use of them is importable from here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from cqrskit._signal import Signal

# "X as X": re-exported for the drivers (readstore._sqlite, readstore._postgres).
from cqrskit.readstore._sql_bookkeeping import LIVE_TABLES_SQL as LIVE_TABLES_SQL
from cqrskit.readstore._sql_bookkeeping import META_TABLES as META_TABLES
from cqrskit.readstore._sql_bookkeeping import PARKED_RAW_COLUMNS as PARKED_RAW_COLUMNS
from cqrskit.readstore._sql_bookkeeping import UNPARK_SQL, _now, _SqlBookkeeping
from cqrskit.readstore._sql_control import _SqlControls
from cqrskit.readstore._sql_driver import Row as Row
from cqrskit.readstore._sql_driver import RowCountMismatch as RowCountMismatch
from cqrskit.readstore._sql_driver import SqlDriver as SqlDriver
from cqrskit.readstore._sql_driver import SqlTransaction as SqlTransaction
from cqrskit.readstore._sql_driver import Statement as Statement
from cqrskit.readstore._sql_snapshot import SqlSnapshot
from cqrskit.readstore.base import (
    CHANGED,
    CheckpointConflict,
    ParkedEvent,
    ProjectionSpec,
    ReadTransaction,
    SetupHook,
    check_name,
    check_projection,
    check_projection_name,
    no_parked_event,
    physical_table,
    resolve_tables,
    wait_with_signal,
)
from cqrskit.store.base import Position

__all__ = ["SqlReadStore", "SqlSnapshot", "SqlUnitOfWork", "check_name"]


class SqlUnitOfWork:
    """A projection's writes in one SQL transaction.

    ``{table}`` in SQL text names one of the projection's logical tables; ``?`` marks a
    parameter on both databases.
    """

    def __init__(self, tx: SqlTransaction, tables: Mapping[str, str], dialect: str) -> None:
        self._tx = tx
        self._tables = tables
        self._pending: list[Statement] = []
        self.dialect = dialect
        """``"sqlite"`` or ``"postgresql"``, for the rare statement that must differ."""

    def table(self, logical: str) -> str:
        """The physical name of a logical table in the version being written."""
        return self._tables[logical]

    async def execute(self, sql: str, *params: Any) -> None:
        """Queue one statement (sent before the next read or at commit)."""
        self._queue(resolve_tables(sql, self._tables), [params])

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Queue one statement for many parameter rows."""
        self._queue(resolve_tables(sql, self._tables), list(rows))

    def _queue(self, sql: str, rows: list[Sequence[Any]]) -> None:
        last = self._pending[-1] if self._pending else None
        if last is not None and last.sql == sql and last.expect_rows is None:
            last.rows.extend(rows)
        else:
            self._pending.append(Statement(sql, rows))

    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        """Rows of a query, seeing this transaction's own writes."""
        pending, self._pending = self._pending, []
        return await self._tx.fetch(pending, resolve_tables(sql, self._tables), params)

    async def fetchone(self, sql: str, *params: Any) -> Row | None:
        """The first row of a query, or ``None``."""
        rows = await self.fetch(sql, *params)
        return rows[0] if rows else None

    def _take_pending(self) -> list[Statement]:
        pending, self._pending = self._pending, []
        return pending


class SqlReadStore(_SqlBookkeeping, _SqlControls):
    """Read models in SQLite or PostgreSQL tables; open with ``open_read_store``.

    Readers use :meth:`query` (or :meth:`fetchone`), which resolves ``{table}`` to the
    live version's tables, so a rebuild's switch is invisible to them.
    """

    def __init__(self, driver: SqlDriver, poll_interval: float | None = None) -> None:
        self._driver = driver
        self._signal = Signal()
        self._listening = False
        self._poll_interval = poll_interval

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._driver.dialect

    async def prepare(self, projection: ProjectionSpec, setup: SetupHook[SqlUnitOfWork]) -> bool:
        """Create a projection version's tables once, and make the first version live.

        Raises :class:`ValueError` first (before touching the database) for names that
        could collide: see :func:`~cqrskit.readstore.base.check_projection`.
        """
        check_projection(projection)
        if await self.checkpoint(projection.name, projection.version) is not None:
            return False
        tables = {
            t: physical_table(projection.name, t, projection.version) for t in projection.tables
        }
        async with self._driver.begin() as tx:
            lock = self._driver.lock_statement(f"cqrskit-prepare:{projection.name}")
            exists = await tx.fetch(
                [lock] if lock else [],
                "SELECT 1 AS one FROM cqrskit_checkpoints WHERE projection = ? AND version = ?",
                (projection.name, projection.version),
            )
            if exists:
                return False
            uow = SqlUnitOfWork(tx, tables, self._driver.dialect)
            await setup(uow)
            statements = uow._take_pending()
            statements.append(
                Statement(
                    "INSERT INTO cqrskit_projection_tables (projection, version, logical, "
                    "physical) VALUES (?, ?, ?, ?)",
                    [(projection.name, projection.version, t, p) for t, p in tables.items()],
                )
            )
            statements.append(
                Statement(
                    "INSERT INTO cqrskit_checkpoints (projection, version, commit_id, seq, "
                    "updated_at) VALUES (?, ?, 0, 0, ?)",
                    [(projection.name, projection.version, _now())],
                )
            )
            statements.append(
                Statement(
                    "INSERT INTO cqrskit_projections (projection, live_version) VALUES (?, ?) "
                    "ON CONFLICT (projection) DO NOTHING",
                    [(projection.name, projection.version)],
                )
            )
            if self._driver.notify_channel is not None:
                statements.append(
                    Statement(
                        "SELECT pg_notify(?, ?)", [(self._driver.notify_channel, projection.name)]
                    )
                )
            await tx.commit([s for s in statements if s.rows])
        # A waiter may be waiting for the checkpoint row that now exists.
        self._signal.fire({projection.name: CHANGED})
        return True

    async def _tables_of(self, projection: str, version: int) -> dict[str, str]:
        rows = await self._driver.query(
            "SELECT logical, physical FROM cqrskit_projection_tables "
            "WHERE projection = ? AND version = ?",
            (projection, version),
        )
        return {r["logical"]: r["physical"] for r in rows}

    @asynccontextmanager
    async def transaction(
        self, projection: ProjectionSpec, expected: Position | None
    ) -> AsyncIterator[ReadTransaction[SqlUnitOfWork]]:
        """One transaction over a projection version: effects and bookkeeping together."""
        name, version = projection.name, projection.version
        tables = {t: physical_table(name, t, version) for t in projection.tables}
        async with self._driver.begin() as sql_tx:
            uow = SqlUnitOfWork(sql_tx, tables, self._driver.dialect)
            tx = ReadTransaction(uow)
            yield tx
            statements = uow._take_pending()
            statements += self._bookkeeping(name, version, expected, tx)
            try:
                await sql_tx.commit(statements)
            except RowCountMismatch as exc:
                if exc.args and exc.args[0] == UNPARK_SQL:
                    # Another transaction unparked (retried or discarded) the event first.
                    raise await self._missing_parked(name, version, tx.unparked) from None
                raise CheckpointConflict(
                    name, version, expected or Position(0, 0), await self.checkpoint(name, version)
                ) from None
        self._signal.fire({name: CHANGED})

    async def _missing_parked(self, name: str, version: int, ids: list[str]) -> LookupError:
        """The error for a failed unpark guard, naming the id that is no longer parked."""
        parked = {p.id for p in await self.parked_events(name, version)}
        seen: set[str] = set()
        for parked_id in ids:
            if parked_id not in parked or parked_id in seen:
                return no_parked_event(name, version, parked_id)
            seen.add(parked_id)
        return no_parked_event(name, version, ids[0])

    async def checkpoint(self, projection: str, version: int) -> Position | None:
        """The checkpoint of one projection version."""
        rows = await self._driver.query(
            "SELECT commit_id, seq FROM cqrskit_checkpoints WHERE projection = ? AND version = ?",
            (projection, version),
        )
        return Position(int(rows[0]["commit_id"]), int(rows[0]["seq"])) if rows else None

    async def live_version(self, projection: str) -> int | None:
        """The version readers use."""
        rows = await self._driver.query(
            "SELECT live_version FROM cqrskit_projections WHERE projection = ?", (projection,)
        )
        return int(rows[0]["live_version"]) if rows else None

    async def live_checkpoint(self, projection: str) -> Position | None:
        """The checkpoint of the version readers use."""
        rows = await self._driver.query(
            "SELECT c.commit_id, c.seq FROM cqrskit_projections p JOIN cqrskit_checkpoints c "
            "ON c.projection = p.projection AND c.version = p.live_version "
            "WHERE p.projection = ?",
            (projection,),
        )
        return Position(int(rows[0]["commit_id"]), int(rows[0]["seq"])) if rows else None

    async def live_tables(self, projection: str) -> dict[str, str]:
        """The logical tables of the version readers use, with their physical names
        (``{}`` before the projection is first prepared).

        For a reader whose newer projection version added a table: until the rebuild
        that fills it goes live, the version readers use may not have it.
        """
        rows = await self._driver.query(LIVE_TABLES_SQL, (projection,))
        return {r["logical"]: r["physical"] for r in rows}

    async def wait_for_checkpoint(
        self, projection: str, position: Position, timeout: float
    ) -> Position | None:
        """Wait until the live checkpoint reaches ``position``; return the last one seen.

        Woken at once by commits through this store; by other processes' commits through
        LISTEN/NOTIFY on PostgreSQL, or within ``poll_interval`` on SQLite.
        """
        if not self._listening:
            self._listening = True
            await self._driver.start_listening(self._signal.fire)
        return await wait_with_signal(
            self._signal,
            self.live_checkpoint,
            projection,
            position,
            timeout,
            self._poll_interval,
        )

    async def parked_count(self, projection: str, version: int) -> int:
        """How many events a projection version has parked (a count, not the rows)."""
        rows = await self._driver.query(
            "SELECT count(*) AS n FROM cqrskit_parked_events WHERE projection = ? AND version = ?",
            (projection, version),
        )
        return int(rows[0]["n"])

    async def parked_events(self, projection: str, version: int | None = None) -> list[ParkedEvent]:
        """Parked events of a projection version (the live one by default), oldest first."""
        if version is None:
            version = await self.live_version(projection)
            if version is None:
                return []
        rows = await self._driver.query(
            "SELECT * FROM cqrskit_parked_events WHERE projection = ? AND version = ? "
            "ORDER BY commit_id, seq",
            (projection, version),
        )
        return [
            ParkedEvent(
                id=str(Position(int(r["commit_id"]), int(r["seq"]))),
                projection=r["projection"],
                version=int(r["version"]),
                position=Position(int(r["commit_id"]), int(r["seq"])),
                stream_id=r["stream_id"],
                stream_version=int(r["stream_version"]),
                event_type=r["event_type"],
                error=r["error"],
                attempts=int(r["attempts"]),
                parked_at=datetime.fromisoformat(r["parked_at"]),
                schema_version=None if r["schema_version"] is None else int(r["schema_version"]),
                data=r["data"],
                metadata=r["metadata"],
            )
            for r in rows
        ]

    async def drop_version(self, projection: str, version: int) -> None:
        """Drop a version's tables and forget its checkpoint and parked events."""
        check_projection_name(projection)
        if await self.live_version(projection) == version:
            raise ValueError(f"{projection} v{version} is live; switch before dropping it")
        tables = await self._tables_of(projection, version)
        key = (projection, version)
        async with self._driver.begin() as tx:
            statements = [Statement(f"DROP TABLE IF EXISTS {p}", [()]) for p in tables.values()]
            for meta in (
                "cqrskit_projection_tables",
                "cqrskit_checkpoints",
                "cqrskit_parked_events",
            ):
                statements.append(
                    Statement(f"DELETE FROM {meta} WHERE projection = ? AND version = ?", [key])
                )
            await tx.commit(statements)

    async def query(self, projection: str, sql: str, *params: Any) -> list[Row]:
        """Rows of a reader's query over the live version of ``projection``'s tables."""
        return await self._driver.query_live(projection, sql, params)

    async def fetchone(self, projection: str, sql: str, *params: Any) -> Row | None:
        """The first row of a reader's query, or ``None``."""
        rows = await self.query(projection, sql, *params)
        return rows[0] if rows else None

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[SqlSnapshot]:
        """A read-only view of the whole store at one moment: every read through it sees
        the same committed state (e.g. a version's rows together with its checkpoint).

        PostgreSQL: a ``REPEATABLE READ, READ ONLY`` transaction, which takes no locks.
        SQLite: the driver's write transaction, its one transaction over several
        statements; readers go on meanwhile, but other writers (the runner's commits)
        wait until it ends, so keep it short. Nothing is ever written through it.

        Its queries may read whole tables, so on PostgreSQL each may take up to ten
        minutes (``SCAN_TIMEOUT``), or the store's ``command_timeout`` if that is longer.
        """
        first = []
        if self.dialect == "postgresql":
            first.append(
                Statement("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", [()])
            )
        async with self._driver.begin_scan() as tx:
            yield SqlSnapshot(tx, first, self.dialect)

    async def close(self) -> None:
        """Close the connections."""
        await self._driver.close()
