"""The PostgreSQL event store's reads in global order: ``read_all``, ``head``, and waiting
for new events (``wait_for_events``, ``next_events``), woken by LISTEN/NOTIFY.

Only events of transactions older than the oldest one still running are readable
(``transaction_id < pg_snapshot_xmin(pg_current_snapshot())``), ordered by
``(transaction_id, global_position)``: DESIGN.md mechanism 3, explained in
:mod:`cqrskit.store.postgres`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, cast

import asyncpg

from cqrskit._signal import Signal
from cqrskit.messages import DomainEvent
from cqrskit.store._arguments import check_limit, check_position
from cqrskit.store._common import StoredRow, decode_page, event_page
from cqrskit.store._pg_listener import Listener
from cqrskit.store._pg_spare import SpareConnection
from cqrskit.store.base import START, EventPage, Position, RecordedEvent
from cqrskit.store.serialization import EventRegistry

if TYPE_CHECKING:
    from cqrskit.store._pg_schema import Connection

_log = logging.getLogger("cqrskit.store.postgres")

_RECHECK_FIRST: Final = 0.005
_RECHECK_MAX: Final = 0.1
_SQL_OLDEST_TRANSACTION: Final = (
    "SELECT pid, datname, state, xact_start, left(query, 200) AS query FROM pg_stat_activity "
    "WHERE backend_xid IS NOT NULL ORDER BY age(backend_xid) DESC LIMIT 1"
)
COLUMNS: Final = (
    "stream_id, version, transaction_id, global_position, event_type, schema_version, "
    "data, metadata, (extract(epoch FROM recorded_at) * 1000000)::int8"
)
"""The columns of a stored event, in the order :data:`~cqrskit.store._common.StoredRow`
has them. The recorded time comes as microseconds since the epoch: asyncpg's own
``timestamptz`` decoding makes a ``datetime`` per row (~0.7 µs, a third of the client's
work per fetched row, measured; the server's conversion costs ~0.3 µs), where
:func:`recorded_at` makes one per append (its events share the time)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def recorded_at(micros: int) -> datetime:
    """The UTC time of a stored event from the microseconds :data:`COLUMNS` fetches."""
    return _EPOCH + timedelta(microseconds=micros)


class _GlobalReads:
    """The read path of :class:`~cqrskit.store.postgres.PostgresEventStore` in global order."""

    if TYPE_CHECKING:
        registry: EventRegistry
        _pool: asyncpg.Pool
        _connections: SpareConnection
        _listener: Listener
        _wakeups: Signal
        _poll_interval: float

        def _ensure_open(self) -> None: ...

        def _passed_over(self, types: object) -> list[str] | None: ...

    held_back_warning = 10.0
    """Seconds a waiter sees committed events held back by an older open transaction
    before it logs a warning naming that transaction (and again every as many seconds)."""

    def _prepare_reads(self, schema: str) -> None:
        """Build the read path's statements for the (quoted) ``schema``."""
        readable = "transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
        self._sql_read_all = (
            f"SELECT {COLUMNS} FROM {schema}.events "
            f"WHERE (transaction_id, global_position) > ($1::xid8, $2) AND {readable} "
            "ORDER BY transaction_id, global_position LIMIT $3"
        )
        # The payloads of the events passed over are not even sent: NULL marks them (both
        # columns are NOT NULL).
        passed_over = "event_type = ANY($4::text[])"
        self._sql_read_some = self._sql_read_all.replace(
            "data, metadata,",
            f"CASE WHEN {passed_over} THEN NULL ELSE data END, "
            f"CASE WHEN {passed_over} THEN NULL ELSE metadata END,",
        )
        self._sql_head = (
            f"SELECT transaction_id, global_position FROM {schema}.events WHERE {readable} "
            "ORDER BY transaction_id DESC, global_position DESC LIMIT 1"
        )
        self._sql_next_readable = (
            f"SELECT {readable} FROM {schema}.events "
            "WHERE (transaction_id, global_position) > ($1::xid8, $2) "
            "ORDER BY transaction_id, global_position LIMIT 1"
        )

    def _recorded(self, rows: list[asyncpg.Record], *, strict: bool) -> list[RecordedEvent]:
        return decode_page(self.registry, cast("list[StoredRow]", rows), recorded_at, strict=strict)

    def _page(
        self, rows: list[asyncpg.Record], after: Position, passed_over: list[str] | None
    ) -> EventPage:
        return event_page(
            self.registry,
            cast("list[StoredRow]", rows),
            after,
            recorded_at,
            filtered=passed_over is not None,
        )

    async def _fetch(
        self,
        conn: Connection | SpareConnection,
        after: Position,
        limit: int,
        passed_over: list[str] | None,
    ) -> list[asyncpg.Record]:
        if passed_over is None:
            return await conn.fetch(self._sql_read_all, after.commit, after.seq, limit)
        return await conn.fetch(self._sql_read_some, after.commit, after.seq, limit, passed_over)

    async def read_all(
        self,
        after: Position | str = START,
        limit: int = 1000,
        *,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        """Up to ``limit`` readable events after ``after`` (a position or a consistency
        token), ordered by transaction id, then global position.

        Events of transactions at or after the oldest transaction still running are held
        back until it ends, so none can later appear behind a position returned here.
        With ``types``, the payloads of the other events are not sent.
        """
        self._ensure_open()
        after = check_position(after)
        check_limit(limit)
        passed_over = self._passed_over(types)
        rows = await self._fetch(self._connections, after, limit, passed_over)
        return self._page(rows, after, passed_over)

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
        self,
        after: Position | str,
        limit: int = 1000,
        *,
        timeout: float,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        """Up to ``limit`` events after ``after`` once one is readable, waiting up to
        ``timeout`` (woken as :meth:`wait_for_events` is); an empty page when none became
        readable. ``types`` as for :meth:`read_all`.

        A wake-up costs one query that returns the events themselves, not a check followed
        by a read: a round trip less between an append and a live projection.
        """
        after = check_position(after)
        limit = check_limit(limit)
        passed_over = self._passed_over(types)
        rows = await self._when_readable(after, timeout, limit, passed_over)
        return self._page(rows or [], after, passed_over)

    async def _when_readable(
        self,
        after: Position,
        timeout: float,
        limit: int | None,
        passed_over: list[str] | None = None,
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
                    rows = await self._fetch(conn, after, limit, passed_over)
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
