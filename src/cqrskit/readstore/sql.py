"""SQL read store: one implementation for SQLite and PostgreSQL, over a small driver.

Projection SQL is written once for both databases: ``?`` placeholders (turned into
``$1, $2, ...`` for PostgreSQL) and ``{table}`` placeholders naming the projection's
logical tables (resolved to the physical table of the version being written or read).
``INSERT ... ON CONFLICT (...) DO UPDATE SET ...`` is the portable UPSERT.

Writes made through :class:`SqlUnitOfWork` are buffered and sent together (consecutive
statements with the same text become one ``executemany``), so a projection may write row
by row without paying a round trip per row. A ``fetch`` sends the buffer first, so reads
inside a transaction always see its own writes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cqrskit._signal import Signal
from cqrskit.readstore.base import (
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
    stored_form,
    wait_with_signal,
)
from cqrskit.store.base import Position

__all__ = ["SqlReadStore", "SqlSnapshot", "SqlUnitOfWork", "check_name"]

Row = dict[str, Any]

META_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS cqrskit_projections (
        projection TEXT PRIMARY KEY,
        live_version INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS cqrskit_checkpoints (
        projection TEXT NOT NULL,
        version INTEGER NOT NULL,
        commit_id BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (projection, version)
    )""",
    """CREATE TABLE IF NOT EXISTS cqrskit_projection_tables (
        projection TEXT NOT NULL,
        version INTEGER NOT NULL,
        logical TEXT NOT NULL,
        physical TEXT NOT NULL,
        PRIMARY KEY (projection, version, logical)
    )""",
    """CREATE TABLE IF NOT EXISTS cqrskit_parked_events (
        projection TEXT NOT NULL,
        version INTEGER NOT NULL,
        commit_id BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        stream_id TEXT NOT NULL,
        stream_version BIGINT NOT NULL,
        event_type TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        parked_at TEXT NOT NULL,
        schema_version INTEGER,
        data TEXT,
        metadata TEXT,
        PRIMARY KEY (projection, version, commit_id, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS cqrskit_control (
        projection TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (projection, kind)
    )""",
)

PARKED_RAW_COLUMNS: Final = (("schema_version", "INTEGER"), ("data", "TEXT"), ("metadata", "TEXT"))
"""Columns added to ``cqrskit_parked_events`` after its first release (the raw stored form
of an undecodable event); :meth:`SqlReadStore.create_meta` adds them to older tables."""

UNPARK_SQL: Final = (
    "DELETE FROM cqrskit_parked_events WHERE projection = ? AND version = ? "
    "AND commit_id = ? AND seq = ?"
)

LIVE_TABLES_SQL: Final = (
    "SELECT t.logical, t.physical FROM cqrskit_projections p "
    "JOIN cqrskit_projection_tables t ON t.projection = p.projection "
    "AND t.version = p.live_version WHERE p.projection = ?"
)


@dataclass(slots=True)
class Statement:
    """One statement text with the parameter rows to run it with.

    ``expect_rows`` makes the statement a guard: the transaction fails unless exactly that
    many rows were affected.
    """

    sql: str
    rows: list[Sequence[Any]]
    expect_rows: int | None = None


class RowCountMismatch(Exception):
    """A guard statement affected an unexpected number of rows."""


class SqlTransaction(ABC):
    """A driver's open transaction (begun lazily by the first statement it runs)."""

    @abstractmethod
    async def run(self, statements: list[Statement]) -> None:
        """Run ``statements`` in order inside the transaction."""

    @abstractmethod
    async def fetch(self, pending: list[Statement], sql: str, params: Sequence[Any]) -> list[Row]:
        """Run ``pending``, then the query, inside the transaction."""

    @abstractmethod
    async def commit(self, statements: list[Statement]) -> None:
        """Run ``statements`` and commit."""


class SqlDriver(ABC):
    """What differs between SQLite and PostgreSQL: connections, placeholders, DDL."""

    dialect: str
    notify_channel: str | None = None

    @abstractmethod
    def begin(self) -> AbstractAsyncContextManager[SqlTransaction]:
        """A write transaction; rolled back on leaving unless committed."""

    @abstractmethod
    async def query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """A read outside any write transaction."""

    @abstractmethod
    async def query_live(self, projection: str, sql: str, params: Sequence[Any]) -> list[Row]:
        """Resolve the live tables of ``projection`` into ``sql`` and run it, consistently."""

    def lock_statement(self, key: str) -> Statement | None:
        """A statement serialising schema changes among processes (if the database needs it)."""
        return None

    async def start_listening(  # noqa: B027 - optional hook
        self, on_change: Callable[[dict[str, Position | None]], None]
    ) -> None:
        """Tell ``on_change`` about checkpoint changes made by other processes, as news for
        ``wait_with_signal``: ``{projection: live checkpoint}`` where known, ``None`` for
        a change that leaves the live checkpoint alone, ``{}`` for "look yourself"."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""


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


class SqlSnapshot:
    """Reads that all see the store at one moment (see :meth:`SqlReadStore.snapshot`).

    SQL is run as given: ``?`` placeholders, physical table names (no ``{table}``).
    """

    def __init__(self, tx: SqlTransaction, first: list[Statement], dialect: str) -> None:
        self._tx = tx
        self._first = first
        self.dialect = dialect
        """``"sqlite"`` or ``"postgresql"``."""

    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        """Rows of a query, as of the snapshot."""
        first, self._first = self._first, []
        return await self._tx.fetch(first, sql, params)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SqlReadStore:
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

    async def create_meta(self) -> None:
        """Create the bookkeeping tables (idempotent)."""
        async with self._driver.begin() as tx:
            lock = self._driver.lock_statement("cqrskit-readstore-meta")
            statements = [lock] if lock else []
            statements += [Statement(sql, [()]) for sql in META_TABLES]
            columns = await tx.fetch(statements, self._columns_sql("cqrskit_parked_events"), ())
            present = {r["name"] for r in columns}
            await tx.commit(
                [
                    Statement(f"ALTER TABLE cqrskit_parked_events ADD COLUMN {name} {kind}", [()])
                    for name, kind in PARKED_RAW_COLUMNS
                    if name not in present
                ]
            )

    def _columns_sql(self, table: str) -> str:
        if self._driver.dialect == "sqlite":
            return f"SELECT name FROM pragma_table_info('{table}')"
        return (
            "SELECT column_name AS name FROM information_schema.columns "
            f"WHERE table_name = '{table}' AND table_schema = current_schema()"
        )

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
        self._signal.fire()
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
        self._signal.fire()

    def _bookkeeping(
        self, name: str, version: int, expected: Position | None, tx: ReadTransaction[Any]
    ) -> list[Statement]:
        statements: list[Statement] = []
        if tx.parked:
            now = _now()
            statements.append(
                Statement(
                    "INSERT INTO cqrskit_parked_events (projection, version, commit_id, seq, "
                    "stream_id, stream_version, event_type, error, attempts, parked_at, "
                    "schema_version, data, metadata) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (projection, version, commit_id, seq) DO UPDATE SET "
                    "error = excluded.error, attempts = excluded.attempts, "
                    "parked_at = excluded.parked_at, schema_version = excluded.schema_version, "
                    "data = excluded.data, metadata = excluded.metadata",
                    [
                        (
                            name,
                            version,
                            e.position.commit,
                            e.position.seq,
                            e.stream_id,
                            e.version,
                            form.event_type,
                            error,
                            attempts,
                            now,
                            form.schema_version,
                            form.data,
                            form.metadata,
                        )
                        for e, error, attempts in tx.parked
                        for form in (stored_form(e),)
                    ],
                )
            )
        if tx.retry_failures:
            # No guard: a parked event retried or discarded meanwhile stays gone.
            statements.append(
                Statement(
                    "UPDATE cqrskit_parked_events SET error = ?, attempts = attempts + 1 "
                    "WHERE projection = ? AND version = ? AND commit_id = ? AND seq = ?",
                    [
                        (error, name, version, p.position.commit, p.position.seq)
                        for p, error in tx.retry_failures
                    ],
                )
            )
        for parked_id in tx.unparked:
            try:
                position = Position.parse(parked_id)
            except ValueError:
                raise no_parked_event(name, version, parked_id) from None
            # A guard: exactly one row, or the event is no longer parked and all rolls back.
            statements.append(
                Statement(UNPARK_SQL, [(name, version, position.commit, position.seq)], 1)
            )
        channel = self._driver.notify_channel
        notified = False
        if expected is not None or tx.new_checkpoint is not None:
            target = tx.new_checkpoint or expected
            assert target is not None
            guard = "" if expected is None else " AND commit_id = ? AND seq = ?"
            params: tuple[Any, ...] = (target.commit, target.seq, _now(), name, version)
            if expected is not None:
                params += (expected.commit, expected.seq)
            update = (
                "UPDATE cqrskit_checkpoints SET commit_id = ?, seq = ?, updated_at = ? "
                f"WHERE projection = ? AND version = ?{guard}"
            )
            if channel is not None and not tx.switch_live:
                # Checkpoint and NOTIFY in one round trip; the payload tells waiters in
                # other processes the new checkpoint and whether readers use this version,
                # so they need not read it (see checkpoint_news). FOR SHARE keeps that
                # "live" true until this commits: a switch of the live version waits for
                # it, and a switch already committed is seen (not this statement's older
                # snapshot), so a waiter is never told of a version readers left.
                statements.append(
                    Statement(
                        f"WITH moved AS ({update} RETURNING version, commit_id, seq) "
                        "SELECT pg_notify(?, concat_ws(' ', ?::text, m.version, "
                        "m.commit_id || ':' || m.seq, "
                        "CASE WHEN p.live_version = m.version THEN 'live' ELSE 'other' END)) "
                        "FROM moved m LEFT JOIN (SELECT live_version FROM cqrskit_projections "
                        "WHERE projection = ? FOR SHARE) p ON true",
                        [(*params, channel, name, name)],
                        expect_rows=1,
                    )
                )
                notified = True
            else:
                statements.append(Statement(update, [params], expect_rows=1))
        if tx.switch_live:
            statements.append(
                Statement(
                    "UPDATE cqrskit_projections SET live_version = ? WHERE projection = ?",
                    [(version, name)],
                )
            )
        if channel is not None and not notified:
            statements.append(Statement("SELECT pg_notify(?, ?)", [(channel, name)]))
        return statements

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

    async def put_control(self, projection: str, kind: str, value: str) -> None:
        """Keep a control record (see :meth:`ReadStore.put_control`)."""
        async with self._driver.begin() as tx:
            await tx.commit(
                [
                    Statement(
                        "INSERT INTO cqrskit_control (projection, kind, value, updated_at) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (projection, kind) DO UPDATE SET "
                        "value = excluded.value, updated_at = excluded.updated_at",
                        [(projection, kind, value, _now())],
                    )
                ]
            )

    async def controls(self, kind: str) -> dict[str, tuple[str, datetime]]:
        """Every projection's control record of ``kind``."""
        rows = await self._driver.query(
            "SELECT projection, value, updated_at FROM cqrskit_control WHERE kind = ?", (kind,)
        )
        return {
            r["projection"]: (r["value"], datetime.fromisoformat(r["updated_at"])) for r in rows
        }

    async def take_control(self, projection: str, kind: str) -> str | None:
        """Remove and return a control record; the DELETE decides who gets it."""
        async with self._driver.begin() as tx:
            rows = await tx.fetch(
                [],
                "DELETE FROM cqrskit_control WHERE projection = ? AND kind = ? RETURNING value",
                (projection, kind),
            )
            await tx.commit([])
        return str(rows[0]["value"]) if rows else None

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
        """
        first = []
        if self.dialect == "postgresql":
            first.append(
                Statement("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", [()])
            )
        async with self._driver.begin() as tx:
            yield SqlSnapshot(tx, first, self.dialect)

    async def close(self) -> None:
        """Close the connections."""
        await self._driver.close()
