"""One pooled connection that reads in a row share, instead of a pool round per read.

An asyncpg pool's acquire and release cost more client time than a 10-event
``read_stream`` takes to decode: the release alone runs in a task of its own (``shield``)
one loop iteration later, and each acquire arms an inactivity timer. Measured on
aggregate loads of 10 events, they were a quarter of the client's time per load.

:class:`SpareConnection` keeps the connection of the last read until the event loop has
gone once round without a read taking it again: reads in a row (a command's loads, a
catch-up's pages) skip the pool, and an idle store hands the connection back at once, so
that the pool stays whole for appends (with ``max_connections=1`` too).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["SpareConnection"]


class SpareConnection:
    """Runs reads on the connection the previous read used, while reads keep coming."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._spare: PoolConnectionProxy[asyncpg.Record] | None = None
        self._check_pending = False
        self._closed = False
        self._releases: set[asyncio.Task[None]] = set()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """``conn.fetch(sql, *args)`` on the spare connection, or a pooled one."""
        conn, self._spare = self._spare, None
        if conn is None:
            conn = await self._pool.acquire()
        try:
            rows = await conn.fetch(sql, *args)
        except BaseException:
            # The pool's release cleans up after a broken, cancelled or failed query.
            await self._pool.release(conn)
            raise
        if self._spare is not None or self._closed:
            await self._pool.release(conn)
        else:
            self._spare = conn
            if not self._check_pending:
                self._check_pending = True
                asyncio.get_running_loop().call_soon(self._release_if_unused)
        return rows

    def _release_if_unused(self) -> None:
        # One loop iteration after a read kept the connection: a read that followed at
        # once has taken it (and will schedule the next check); otherwise it goes back.
        self._check_pending = False
        conn, self._spare = self._spare, None
        if conn is not None:
            task = asyncio.get_running_loop().create_task(self._pool.release(conn))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def close(self) -> None:
        """Hand the spare connection back (before the pool closes, which waits for it)."""
        self._closed = True
        conn, self._spare = self._spare, None
        if conn is not None:
            await self._pool.release(conn)
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
