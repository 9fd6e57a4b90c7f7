"""PostgreSQL event store on asyncpg: concurrent writers, gap-free global order.

Global order follows DESIGN.md mechanism 3. Every event row carries the id of the
transaction that wrote it (``xid8``). Readers take only events of transactions older than
the oldest one still running (``pg_snapshot_xmin(pg_current_snapshot())``), ordered by
``(transaction_id, global_position)``; that pair is the :class:`Position`. An event that
becomes readable later always sorts after everything a reader has already seen, so a
checkpoint never skips one, and writers never queue behind a global lock.

An append is one round trip that reads every stream's version before its first write
(so a later version of a stream always has a larger transaction id); the append path,
its NOTIFYs and the settling of races live in ``store/_pg_append.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Final, cast

import asyncpg
import orjson

from cqrskit._signal import Signal
from cqrskit.store._arguments import check_from_version, check_id, check_limit, check_position
from cqrskit.store._common import (
    EncodedAppend,
    EventStoreBase,
    StoredRow,
    decode_page,
    load_result,
)
from cqrskit.store._connect import COMMAND_TIMEOUT, CONNECT_TIMEOUT, connecting
from cqrskit.store._pg_append import EventStoreConnectionLost, NotifyMode, PgAppender
from cqrskit.store._pg_listener import Listener
from cqrskit.store._pg_schema import (
    CONNECT_ERRORS,
    SESSION_SETTINGS,
    PgTarget,
    keep_session,
    migrate,
    parse_url,
    pool_settings,
)
from cqrskit.store.base import (
    START,
    AppendResult,
    Idempotency,
    Position,
    RecordedEvent,
    Snapshot,
)
from cqrskit.store.serialization import EventRegistry

if TYPE_CHECKING:
    from cqrskit.store._pg_schema import Connection

_log = logging.getLogger("cqrskit.store.postgres")

__all__ = ["EventStoreConnectionLost", "NotifyMode", "PostgresEventStore"]

_RECHECK_FIRST: Final = 0.005
_RECHECK_MAX: Final = 0.1
_SQL_OLDEST_TRANSACTION: Final = (
    "SELECT pid, datname, state, xact_start, left(query, 200) AS query FROM pg_stat_activity "
    "WHERE backend_xid IS NOT NULL ORDER BY age(backend_xid) DESC LIMIT 1"
)


class PostgresEventStore(EventStoreBase):
    """Event store in a PostgreSQL schema. Open it with :meth:`open` or ``open_event_store``.

    A handle owns a pool of asyncpg connections and, once someone waits for events, one
    extra connection that LISTENs for appends; :meth:`close` releases both.

    Errors: :class:`ConcurrencyError` when a stream is not at the expected version, and
    :class:`EventStoreConnectionLost` (an ``EventStoreError``) when the connection breaks
    during an append, which is then committed whole or not at all. Reads and other calls
    let asyncpg's own errors through (``OSError``, ``asyncpg.PostgresError``,
    ``asyncpg.InterfaceError``).
    """

    held_back_warning = 10.0
    """Seconds a waiter sees committed events held back by an older open transaction
    before it logs a warning naming that transaction (and again every as many seconds)."""

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
        )
        s = target.quoted
        columns = (
            "stream_id, version, transaction_id, global_position, event_type, schema_version, "
            "data, metadata, recorded_at"
        )
        readable = "transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
        self._sql_read_all = (
            f"SELECT {columns} FROM {s}.events "
            f"WHERE (transaction_id, global_position) > ($1::xid8, $2) AND {readable} "
            "ORDER BY transaction_id, global_position LIMIT $3"
        )
        self._sql_read_stream = (
            f"SELECT {columns} FROM {s}.events WHERE stream_id = $1 AND version >= $2 "
            "ORDER BY version"
        )
        self._sql_head = (
            f"SELECT transaction_id, global_position FROM {s}.events WHERE {readable} "
            "ORDER BY transaction_id DESC, global_position DESC LIMIT 1"
        )
        self._sql_next_readable = (
            f"SELECT {readable} FROM {s}.events "
            "WHERE (transaction_id, global_position) > ($1::xid8, $2) "
            "ORDER BY transaction_id, global_position LIMIT 1"
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
        connect_options: dict[str, Any] | None = None,
    ) -> PostgresEventStore:
        """Open (creating and migrating the schema as needed) the store at ``url``;
        :class:`~cqrskit.errors.StoreUnavailable` when the server cannot be reached.

        ``url`` is ``postgresql://user:password@host:port/db?schema=name``. The store takes
        its own query options out of it and hands every other one to asyncpg: ``schema``
        (default ``cqrskit``), and ``notify`` and ``max_connections`` as defaults for the
        keyword arguments of the same names (so deployments can set them in the URL).

        ``max_connections`` bounds the pool (default 10). ``notify="after_commit"`` (the
        default) sends one wake-up NOTIFY for any number of appends just after they commit
        (within 5 ms), from a background task; a crash in between delays other processes'
        waiters until their next poll. ``"in_transaction"`` sends the NOTIFY inside each
        append's transaction, so it goes out exactly when the append commits, but
        PostgreSQL serializes the commits of notifying transactions on one lock: with many
        concurrent writers that caps throughput at one commit at a time (see
        docs/benchmarks/event-store.md), which is why it is not the default.
        ``poll_interval`` is how often waiters look without a notification (a fallback
        heartbeat, not the wake-up path).

        The pooled connections run with ``enable_seqscan = off``, so that the version
        check of an append stays an index lookup even when the table's statistics are
        stale (taken while it was empty, on a server without autovacuum); a
        ``server_settings`` entry in ``connect_options`` overrides it. A connection attempt
        times out after 3 s and a statement after 3 s (``timeout`` and ``command_timeout``
        in ``connect_options`` override them), so that a server that stops answering
        fails callers rather than holding them.
        """
        target, url_options = parse_url(url)
        chosen, max_connections = pool_settings(
            url, url_options, notify, min_connections, max_connections
        )
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        options: dict[str, Any] = dict(connect_options or {})
        pool_options = {
            # A server that stops answering fails a caller within seconds, not never.
            "timeout": CONNECT_TIMEOUT,
            "command_timeout": COMMAND_TIMEOUT,
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
                    await migrate(conn, target)
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

    def _recorded(self, rows: list[asyncpg.Record], *, strict: bool) -> list[RecordedEvent]:
        return decode_page(self.registry, cast("list[StoredRow]", rows), strict=strict)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """The events of one stream from ``from_version`` on, in version order."""
        self._ensure_open()
        check_id(stream_id, "a stream id")
        check_from_version(from_version)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self._sql_read_stream, stream_id, from_version)
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

    async def read_all(
        self, after: Position | str = START, limit: int = 1000
    ) -> list[RecordedEvent]:
        """Up to ``limit`` readable events after ``after`` (a position or a consistency
        token), ordered by transaction id, then global position.

        Events of transactions at or after the oldest transaction still running are held
        back until it ends, so none can later appear behind a position returned here.
        """
        self._ensure_open()
        after = check_position(after)
        check_limit(limit)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self._sql_read_all, after.commit, after.seq, limit)
        return self._recorded(rows, strict=False)

    async def head(self) -> Position:
        """The position of the last readable event (``START`` when there is none)."""
        self._ensure_open()
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(self._sql_head)
        return START if row is None else Position(row[0], row[1])

    async def wait_for_events(self, after: Position | str, timeout: float) -> bool:
        """Wait until an event after ``after`` is readable; false when ``timeout`` ran out.

        Wake-ups come from LISTEN/NOTIFY over one connection this handle shares among all
        its waiters (started by the first wait; it reconnects when lost). A committed
        event held back by an older open transaction is re-checked at short intervals;
        without any notification, waiters look every ``poll_interval``.
        """
        return await self._when_readable(check_position(after), timeout, None) is not None

    async def next_events(
        self, after: Position | str, limit: int = 1000, *, timeout: float
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events after ``after`` once one is readable, waiting up to
        ``timeout`` (woken as :meth:`wait_for_events` is); ``[]`` when none became readable.

        A wake-up costs one query that returns the events themselves, not a check followed
        by a read: a round trip less between an append and a live projection.
        """
        rows = await self._when_readable(check_position(after), timeout, check_limit(limit))
        return self._recorded(rows, strict=False) if rows else []

    async def _when_readable(
        self, after: Position, timeout: float, limit: int | None
    ) -> list[asyncpg.Record] | None:
        """Wait until an event after ``after`` is readable; ``None`` on timeout. Then the
        first ``limit`` readable rows, or no rows (``[]``) when ``limit`` is ``None``."""
        self._ensure_open()
        self._listener.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        recheck = _RECHECK_FIRST
        held_since: float | None = None
        while True:
            self._ensure_open()
            woken = self._wakeups.current()
            async with self._pool.acquire() as conn:
                if limit is not None:
                    rows = await conn.fetch(self._sql_read_all, after.commit, after.seq, limit)
                    if rows:
                        return rows
                # Null: nothing after the position; false: committed but held back.
                readable = await conn.fetchval(self._sql_next_readable, after.commit, after.seq)
            if readable:
                if limit is None:
                    return []
                continue  # became readable between the two queries
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            if readable is None:
                recheck, held_since = _RECHECK_FIRST, None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(remaining, self._poll_interval))
            else:
                # Committed, but an older transaction is still open: no notification will
                # say when it ends, so look again soon, backing off.
                now = loop.time()
                if held_since is None:
                    held_since = now
                elif now - held_since >= self.held_back_warning:
                    await self._warn_held_back(after, now - held_since)
                    held_since = now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(remaining, recheck))
                recheck = min(recheck * 2, _RECHECK_MAX)

    async def _warn_held_back(self, after: Position, seconds: float) -> None:
        """Say which transaction holds readers back: while it stays open, every projection
        waits (mechanism 3), with nothing else to show for it but a stalled checkpoint."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_SQL_OLDEST_TRANSACTION)
        culprit = (
            "it has ended meanwhile"
            if row is None
            else (
                f"the oldest is pid {row['pid']} (database {row['datname']!r}, "
                f"{row['state']}, open since {row['xact_start']}): {row['query']!r}"
            )
        )
        _log.warning(
            "events after %s have been held back for %.1fs by a transaction still open; %s",
            after,
            seconds,
            culprit,
        )

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
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(self._sql_load_snapshot, stream_id)
        if row is None:
            return None
        version, aggregate_type, schema_version, state = row
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
        await self._pool.close()
