"""The PostgreSQL driver of the SQL read store: an asyncpg pool in one schema.

Every commit that moves a checkpoint also sends ``NOTIFY cqrskit_checkpoints`` in the same
transaction, so waiters in other processes wake exactly when the change becomes visible. The
LISTEN connection reconnects when it drops (and wakes the waiters then, since notifications
sent meanwhile are gone); a slow heartbeat also wakes them, so that a lost connection costs a
waiter at most a heartbeat, never its whole timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from cqrskit.readstore.base import CHANGED, CheckpointNews, resolve_tables
from cqrskit.readstore.sql import (
    LIVE_TABLES_SQL,
    Row,
    RowCountMismatch,
    SqlDriver,
    SqlTransaction,
    Statement,
)
from cqrskit.store._connect import COMMAND_TIMEOUT, CONNECT_TIMEOUT, SCAN_TIMEOUT, connecting
from cqrskit.store._pg_listener import Listener
from cqrskit.store._pg_schema import CONNECT_ERRORS, keep_session
from cqrskit.store.base import Position

CHANNEL = "cqrskit_checkpoints"
"""The prefix of each schema's checkpoint channel (see :func:`checkpoint_channel`)."""


def checkpoint_channel(schema: str) -> str:
    """The NOTIFY channel of the read stores in ``schema``.

    One per schema: NOTIFY is database-wide, and a waiter takes a notification's
    checkpoint as its projection's own, so read models of the same names in two schemas
    (two services, or two tests, sharing a database) must not hear each other. Channel
    names longer than PostgreSQL's 63 bytes are refused, so a long schema is hashed."""
    channel = f"{CHANNEL}.{schema}"
    if len(channel.encode()) <= 63:
        return channel
    return f"{CHANNEL}.{hashlib.blake2b(schema.encode(), digest_size=16).hexdigest()}"


if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | PoolConnectionProxy[Any]


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """Turn ``?`` placeholders into ``$1, $2, ...``, leaving quoted text alone."""
    out: list[str] = []
    number = 0
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            number += 1
            out.append(f"${number}")
            continue
        out.append(char)
    return "".join(out)


def checkpoint_news(payload: str | None) -> CheckpointNews:
    """What a checkpoint NOTIFY says, as news for waiters (see ``wait_with_signal``).

    Payloads are ``"<projection> <version> <commit>:<seq> <live|other>"``, the last part
    saying whether readers used that version (see ``SqlReadStore._bookkeeping``). The
    news is ``{projection: checkpoint}`` for the live version, ``{projection: None}`` for
    another one (its commit leaves the live checkpoint as it was), ``{projection:
    CHANGED}`` for a payload of the projection's name alone (its waiters read the
    checkpoint, others need not), and ``{}`` for anything else: every waiter then reads.
    """
    parts = payload.split(" ") if payload else []
    if len(parts) == 1 and parts[0]:
        return {parts[0]: CHANGED}
    if len(parts) == 4 and parts[3] == "other":
        return {parts[0]: None}
    if len(parts) == 4 and parts[3] == "live":
        with contextlib.suppress(ValueError):
            return {parts[0]: Position.parse(parts[2])}
    return {}


async def heartbeat(
    on_change: Callable[[CheckpointNews], None],
    connected: Callable[[], bool],
    *,
    connected_interval: float,
    disconnected_interval: float,
) -> None:
    """Call ``on_change`` now and then: often while the listener is down, rarely while up
    (which covers a connection that died silently, without the socket noticing)."""
    while True:
        await asyncio.sleep(connected_interval if connected() else disconnected_interval)
        on_change({})


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _affected(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def _run_statements(conn: _Conn, statements: list[Statement]) -> None:
    for statement in statements:
        sql = numbered(statement.sql)
        if len(statement.rows) == 1:
            status = await conn.execute(sql, *statement.rows[0])
            if statement.expect_rows is not None and _affected(status) != statement.expect_rows:
                raise RowCountMismatch(statement.sql)
        else:
            await conn.executemany(sql, statement.rows)


class _PgTransaction(SqlTransaction):
    def __init__(self, conn: _Conn, query_timeout: float | None = None) -> None:
        self._conn = conn
        self._tx = conn.transaction()
        self.begun = False
        self._query_timeout = query_timeout
        """Seconds a query may take (None: the pool's ``command_timeout``)."""

    async def _begin(self) -> None:
        if not self.begun:
            await self._tx.start()
            self.begun = True

    async def run(self, statements: list[Statement]) -> None:
        await self._begin()
        await _run_statements(self._conn, statements)

    async def fetch(self, pending: list[Statement], sql: str, params: Sequence[Any]) -> list[Row]:
        await self._begin()
        await _run_statements(self._conn, pending)
        rows = await self._conn.fetch(numbered(sql), *params, timeout=self._query_timeout)
        return [dict(r) for r in rows]

    async def commit(self, statements: list[Statement]) -> None:
        if not self.begun and len(statements) == 1 and len(statements[0].rows) == 1:
            # One statement is a transaction of its own: one round trip, not three (BEGIN,
            # it, COMMIT). A batch that only moves the checkpoint (every event it passed
            # over is of a type the projection does not handle) commits like this. A
            # failed guard then changed nothing either: the store's guards (checkpoint,
            # unpark) match one row by primary key, so they fail only on zero rows.
            await _run_statements(self._conn, statements)
            return
        await self._begin()
        await _run_statements(self._conn, statements)
        await self._tx.commit()
        self.begun = False

    async def rollback(self) -> None:
        if self.begun:
            self.begun = False
            await self._tx.rollback()


class PostgresDriver(SqlDriver):
    """PostgreSQL through an asyncpg pool, every connection's ``search_path`` on ``schema``."""

    dialect = "postgresql"

    heartbeat_interval = 5.0
    """Seconds between fallback wake-ups while the LISTEN connection is up."""
    reconnecting_heartbeat_interval = 0.5
    """Seconds between fallback wake-ups while the LISTEN connection is down."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        url: str,
        schema: str,
        *,
        command_timeout: float | None = COMMAND_TIMEOUT,
    ) -> None:
        self._pool = pool
        self._url = url
        self._schema = schema
        # A whole-table read (a verify) may take longer than the pool's statements.
        self._scan_timeout = None if command_timeout is None else max(command_timeout, SCAN_TIMEOUT)
        self.notify_channel: str | None = checkpoint_channel(schema)
        self._listener: Listener | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        schema: str,
        pool_size: int = 5,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float | None = COMMAND_TIMEOUT,
    ) -> PostgresDriver:
        """Create the schema if needed and open a pool whose connections use it;
        :class:`~cqrskit.errors.StoreUnavailable` when the server cannot be reached.

        A connection attempt fails after ``connect_timeout`` seconds and a statement after
        ``command_timeout`` (``None``: never), so that a server that stops answering fails
        queries and batches rather than holding them."""
        async with connecting("PostgreSQL read store", url, CONNECT_ERRORS):
            conn = await asyncpg.connect(url, timeout=connect_timeout)
            try:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            except asyncpg.UniqueViolationError:
                pass  # created by a concurrent process at the same moment
            finally:
                await conn.close()
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                # A read model is derived data whose checkpoint commits with it: losing the
                # last few commits in a server crash only means projecting them again, so
                # there is no need to wait for the WAL flush on every batch.
                server_settings={"search_path": schema, "synchronous_commit": "off"},
                reset=keep_session,
                timeout=connect_timeout,
                command_timeout=command_timeout,
            )
        return cls(pool, url, schema, command_timeout=command_timeout)

    def begin(self) -> AbstractAsyncContextManager[SqlTransaction]:
        return self._transaction(None)

    def begin_scan(self) -> AbstractAsyncContextManager[SqlTransaction]:
        return self._transaction(self._scan_timeout)

    @asynccontextmanager
    async def _transaction(self, query_timeout: float | None) -> AsyncIterator[SqlTransaction]:
        async with self._pool.acquire() as conn:
            tx = _PgTransaction(conn, query_timeout)
            try:
                yield tx
            finally:
                if tx.begun:  # committed or never begun: no task to shield a no-op
                    await asyncio.shield(tx.rollback())

    def lock_statement(self, key: str) -> Statement | None:
        return Statement("SELECT pg_advisory_xact_lock(?)", [(lock_key(key),)])

    async def query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        return [dict(r) for r in await self._pool.fetch(numbered(sql), *params)]

    async def query_live(self, projection: str, sql: str, params: Sequence[Any]) -> list[Row]:
        async with self._pool.acquire() as conn:
            for attempt in range(2):
                tables = {
                    r["logical"]: r["physical"]
                    for r in await conn.fetch(numbered(LIVE_TABLES_SQL), projection)
                }
                try:
                    rows = await conn.fetch(numbered(resolve_tables(sql, tables)), *params)
                except asyncpg.UndefinedTableError:
                    # A rebuild switched and dropped the version between our two reads.
                    if attempt:
                        raise
                    continue
                return [dict(r) for r in rows]
        raise AssertionError("unreachable")

    @property
    def listener(self) -> Listener | None:
        """The LISTEN connection's keeper, once listening started (tests look at it)."""
        return self._listener

    async def start_listening(self, on_change: Callable[[CheckpointNews], None]) -> None:
        """Listen in the background: the listener reconnects with backoff whenever the
        connection drops and calls ``on_change({})`` after every (re)connect."""
        if self._listener is not None:
            return
        listener = Listener(
            self._url,
            checkpoint_channel(self._schema),
            lambda payload: on_change(checkpoint_news(payload)),
            {},
        )
        self._listener = listener
        listener.start()
        self._heartbeat = asyncio.create_task(
            heartbeat(
                on_change,
                listener.connected.is_set,
                connected_interval=self.heartbeat_interval,
                disconnected_interval=self.reconnecting_heartbeat_interval,
            ),
            name="cqrskit-readstore-heartbeat",
        )

    async def close(self) -> None:
        heartbeat_task, self._heartbeat = self._heartbeat, None
        if heartbeat_task is not None:
            heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat_task
        listener, self._listener = self._listener, None
        try:
            if listener is not None:
                await listener.stop()
        finally:
            await self._pool.close()
