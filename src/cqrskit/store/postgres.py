"""PostgreSQL event store on asyncpg: concurrent writers, gap-free global order.

Global order follows DESIGN.md mechanism 3. Every event row carries the id of the
transaction that wrote it (``xid8``). Readers take only events of transactions older than
the oldest one still running (``pg_snapshot_xmin(pg_current_snapshot())``), ordered by
``(transaction_id, global_position)``; that pair is the :class:`Position`. An event that
becomes readable later always sorts after everything a reader has already seen, so a
checkpoint never skips one, and writers never queue behind a global lock.

An append is one round trip that reads every stream's version before its first write
(so a later version of a stream always has a larger transaction id); the append path,
its NOTIFYs and the settling of races live in ``store/_pg_append.py``; reading in global
order and waiting for new events in ``store/_pg_read.py``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import asyncpg
import orjson

from cqrskit._signal import Signal
from cqrskit.store._arguments import check_from_version, check_id
from cqrskit.store._common import (
    EncodedAppend,
    EventStoreBase,
    load_result,
)
from cqrskit.store._connect import connecting, timeouts
from cqrskit.store._pg_append import EventStoreConnectionLost, NotifyMode, PgAppender
from cqrskit.store._pg_listener import Listener
from cqrskit.store._pg_read import COLUMNS, _GlobalReads
from cqrskit.store._pg_schema import (
    CONNECT_ERRORS,
    SESSION_SETTINGS,
    PgTarget,
    keep_session,
    migrate_if_behind,
    parse_url,
    pool_settings,
)
from cqrskit.store._pg_spare import SpareConnection
from cqrskit.store.base import (
    AppendResult,
    Idempotency,
    RecordedEvent,
    Snapshot,
)
from cqrskit.store.serialization import EventRegistry

if TYPE_CHECKING:
    from cqrskit.store._pg_schema import Connection

_log = logging.getLogger("cqrskit.store.postgres")

__all__ = ["EventStoreConnectionLost", "NotifyMode", "PostgresEventStore"]


class PostgresEventStore(_GlobalReads, EventStoreBase):
    """Event store in a PostgreSQL schema. Open it with :meth:`open` or ``open_event_store``.

    A handle owns a pool of asyncpg connections and, once someone waits for events, one
    extra connection that LISTENs for appends; :meth:`close` releases both.

    Errors: :class:`ConcurrencyError` when a stream is not at the expected version, and
    :class:`EventStoreConnectionLost` (an ``EventStoreError``) when the connection breaks
    during an append, which is then committed whole or not at all. Reads and other calls
    let asyncpg's own errors through (``OSError``, ``asyncpg.PostgresError``,
    ``asyncpg.InterfaceError``).
    """

    def __init__(
        self,
        registry: EventRegistry,
        pool: asyncpg.Pool,
        target: PgTarget,
        *,
        notify: NotifyMode,
        poll_interval: float,
        connect_options: dict[str, Any],
    ) -> None:
        super().__init__(registry)
        self._pool = pool
        self._connections = SpareConnection(pool)
        self._target = target
        self._poll_interval = poll_interval
        self._wakeups = Signal()
        self._listener = Listener(
            target.dsn, target.channel, lambda _payload: self._wakeups.fire(), connect_options
        )
        self._appender = PgAppender(
            pool,
            target,
            notify,
            poll_interval,
            self._wakeups,
            versions=self._versions,
            find_idempotent=self.find_idempotent,
            stream_version=self.stream_version,
            connections=self._connections,
        )
        s = target.quoted
        self._prepare_reads(s)
        self._sql_read_stream = (
            f"SELECT {COLUMNS} FROM {s}.events WHERE stream_id = $1 AND version >= $2 "
            "ORDER BY version"
        )
        # The last entry of the stream's index, as in the append (see SESSION_SETTINGS).
        last_version = (
            f"coalesce((SELECT e.version FROM {s}.events e WHERE e.stream_id = {{}} "
            "ORDER BY e.version DESC LIMIT 1), 0)"
        )
        self._sql_version = f"SELECT {last_version.format('$1')}"
        self._sql_versions = (
            f"SELECT {last_version.format('q.id')} "
            "FROM unnest($1::text[]) WITH ORDINALITY AS q(id, ord) ORDER BY q.ord"
        )
        self._sql_idempotent = f"SELECT result FROM {s}.idempotency WHERE key = $1"
        self._sql_save_snapshot = (
            f"INSERT INTO {s}.snapshots AS old (stream_id, version, aggregate_type, "
            "schema_version, state) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream_id) DO "
            "UPDATE SET version = excluded.version, aggregate_type = excluded.aggregate_type, "
            "schema_version = excluded.schema_version, state = excluded.state "
            "WHERE excluded.version > old.version"
        )
        self._sql_load_snapshot = (
            f"SELECT version, aggregate_type, schema_version, state FROM {s}.snapshots "
            "WHERE stream_id = $1"
        )

    @classmethod
    async def open(
        cls,
        url: str,
        registry: EventRegistry,
        *,
        min_connections: int = 1,
        max_connections: int | None = None,
        notify: NotifyMode | None = None,
        poll_interval: float = 1.0,
        connect_timeout: float | None = None,
        command_timeout: float | None = None,
        connect_options: dict[str, Any] | None = None,
    ) -> PostgresEventStore:
        """Open (creating and migrating the schema as needed) the store at ``url``;
        :class:`~cqrskit.errors.StoreUnavailable` when the server cannot be reached.

        ``url`` is ``postgresql://user:password@host:port/db?schema=name``. The store takes
        its own query options out of it and hands every other one to asyncpg: ``schema``
        (default ``cqrskit``), and ``notify``, ``max_connections``, ``connect_timeout``
        and ``command_timeout`` as defaults for the keyword arguments of the same names
        (so deployments can set them in the URL). A value the store cannot use raises
        :class:`~cqrskit.errors.StoreOptionError` naming the option.

        ``max_connections`` bounds the pool (default 10); while appends and reads come one
        after another, one of its connections stays out of the pool between them (unless
        the pool has only one), which saves the pool's hand-off per call.
        ``notify="after_commit"`` (the default) sends one wake-up NOTIFY for any number of
        appends just after they commit (within 5 ms), from a background task; a crash in
        between delays other processes' waiters until their next poll.
        ``"in_transaction"`` sends the NOTIFY inside each append's transaction, so it goes
        out exactly when the append commits, but PostgreSQL serializes the commits of
        notifying transactions on one lock: with many concurrent writers that caps
        throughput at one commit at a time (see docs/benchmarks/event-store.md), which is
        why it is not the default.
        ``poll_interval`` is how often waiters look without a notification (a fallback
        heartbeat, not the wake-up path).

        The pooled connections run with ``enable_seqscan = off``, so that the version
        check of an append stays an index lookup even when the table's statistics are
        stale (taken while it was empty, on a server without autovacuum); a
        ``server_settings`` entry in ``connect_options`` overrides it.

        A connection attempt times out after ``connect_timeout`` seconds (default 3) and a
        statement after ``command_timeout`` (default 3), so that a server that stops
        answering fails callers rather than holding them (``timeout`` and
        ``command_timeout`` in ``connect_options`` still override both). Creating or
        upgrading the schema runs on a connection of its own without a statement
        timeout: a migration may take long, or wait for another process's.
        """
        target, url_options = parse_url(url)
        chosen, max_connections = pool_settings(
            url, url_options, notify, min_connections, max_connections
        )
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        limits = timeouts("event store", url_options, connect_timeout, command_timeout)
        options: dict[str, Any] = dict(connect_options or {})
        pool_options = {
            # A server that stops answering fails a caller within seconds, not never.
            "timeout": limits.connect,
            "command_timeout": limits.command,
            **options,
            "server_settings": {**SESSION_SETTINGS, **options.get("server_settings", {})},
        }

        # A server that cannot be reached raises StoreUnavailable naming the store and URL.
        async with connecting("PostgreSQL event store", url, CONNECT_ERRORS):
            pool = await asyncpg.create_pool(
                target.dsn,
                min_size=min_connections,
                max_size=max_connections,
                reset=keep_session,
                **pool_options,
            )
            try:
                async with pool.acquire() as conn:
                    await migrate_if_behind(conn, target, pool_options)
            except BaseException:
                await pool.close()
                raise
        return cls(
            registry,
            pool,
            target,
            notify=cast(NotifyMode, chosen),
            poll_interval=poll_interval,
            connect_options=options,
        )

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding this store's tables."""
        return self._target.schema

    # -- appending ----------------------------------------------------------------------

    async def _append(
        self,
        appends: list[EncodedAppend],
        stream_order: list[str],
        idempotency: Idempotency | None,
    ) -> AppendResult:
        return await self._appender.append(appends, stream_order, idempotency)

    async def _append_on(
        self,
        conn: Connection,
        appends: list[EncodedAppend],
        stream_order: list[str],
        idempotency: Idempotency | None,
    ) -> AppendResult:
        """Run one append statement on ``conn``.

        Internal seam: ``conn`` may be inside a transaction the caller controls (the
        ordering stress test holds appends open and rolls some back this way). Races
        surface as ``asyncpg.UniqueViolationError``; the transaction is then aborted.
        """
        return await self._appender.append_on(conn, appends, stream_order, idempotency)

    # -- reading ------------------------------------------------------------------------

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """The events of one stream from ``from_version`` on, in version order."""
        self._ensure_open()
        check_id(stream_id, "a stream id")
        check_from_version(from_version)
        rows = await self._connections.fetch(self._sql_read_stream, stream_id, from_version)
        return self._recorded(rows, strict=True)

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 when it does not exist."""
        self._ensure_open()
        check_id(stream_id, "a stream id")
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval(self._sql_version, stream_id))

    async def _versions(self, stream_ids: list[str]) -> list[int]:
        async with self._pool.acquire() as conn:
            return [int(r[0]) for r in await conn.fetch(self._sql_versions, stream_ids)]

    # -- idempotency and snapshots ------------------------------------------------------

    async def find_idempotent(self, key: str) -> AppendResult | None:
        """The result of the append made with idempotency ``key``, if there was one."""
        self._ensure_open()
        check_id(key, "an idempotency key")
        async with self._pool.acquire() as conn:
            text = await conn.fetchval(self._sql_idempotent, key)
        return None if text is None else load_result(text)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot`` unless the stored one is as new or newer."""
        self._ensure_open()
        async with self._pool.acquire() as conn:
            await conn.execute(
                self._sql_save_snapshot,
                snapshot.stream_id,
                snapshot.version,
                snapshot.aggregate_type,
                snapshot.schema_version,
                orjson.dumps(snapshot.state).decode(),
            )

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of the stream, if any."""
        self._ensure_open()
        # On the reads' spare connection: the stream's tail is read right after.
        rows = await self._connections.fetch(self._sql_load_snapshot, stream_id)
        if not rows:
            return None
        version, aggregate_type, schema_version, state = rows[0]
        return Snapshot(stream_id, version, aggregate_type, schema_version, orjson.loads(state))

    async def close(self) -> None:
        """Stop listening and notifying, and close every connection; waiters end with
        EventStoreClosed."""
        if self._closed:
            return
        self._closed = True
        self._wakeups.fire()
        await self._appender.close()
        await self._listener.stop()
        await self._connections.close()
        await self._pool.close()
