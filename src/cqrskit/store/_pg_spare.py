"""One pooled connection that the store's calls in a row share, skipping the pool's hand-off.

Profiled, an asyncpg pool's acquire and release cost ~55-70 µs of CPU per call on this
project's machines (the release shields a task of its own and resumes one loop iteration
later, the acquire arms an inactivity timer): a tenth of a one-event append, and more than
decoding a 10-event ``read_stream``. A call takes the *spare* connection when it is free
and gives it back afterwards; calls made meanwhile take pool connections as before, so
nothing queues behind the spare.

The spare is one of the pool's connections, checked out: it goes back to the pool once
the event loop has gone round without a call taking it (an idle store leaves the pool
whole), when a call may have left it mid-query or broken (the pool's release cleans up),
and every :data:`RETURN_EVERY` uses (so that the pool's own upkeep, ``max_queries`` and
expiry, still reaches it). A pool of one connection keeps no spare: work that takes the
pool directly (a conflict's settling, the NOTIFY sender) could wait on it for as long as
calls keep coming.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

__all__ = ["RETURN_EVERY", "SpareConnection"]

RETURN_EVERY: Final = 1000
"""Uses after which the spare goes back through the pool (one hand-off in a thousand)."""


class SpareConnection:
    """Lends one of ``pool``'s connections to one caller at a time; others get the pool's."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._spare: Connection | None = None
        self._uses = 0
        self._keep = pool.get_max_size() > 1
        self._closed = False
        self._check_pending = False
        self._releases: set[asyncio.Task[None]] = set()

    async def take(self) -> Connection:
        """The spare connection if it is free and alive, else one from the pool."""
        conn, self._spare = self._spare, None
        if conn is not None:
            if _open(conn):
                return conn
            await self._pool.release(conn)  # drops it (a no-op if the pool took it back)
        return await self._pool.acquire()

    async def give_back(self, conn: Connection, *, reusable: bool) -> None:
        """Keep ``conn`` as the spare, or return it to the pool: when the spare is taken,
        when ``conn`` is not ``reusable`` (its call failed in a way that may leave it
        mid-query or broken: the pool cleans it up) and every :data:`RETURN_EVERY` uses."""
        self._uses += 1
        if (
            reusable
            and self._keep
            and self._spare is None
            and not self._closed
            and self._uses % RETURN_EVERY
            and _open(conn)
        ):
            self._spare = conn
            if not self._check_pending:
                self._check_pending = True
                asyncio.get_running_loop().call_soon(self._release_if_unused)
            return
        await self._pool.release(conn)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """``conn.fetch(sql, *args)`` on the spare connection, or a pooled one."""
        conn = await self.take()
        try:
            rows = await conn.fetch(sql, *args)
        except asyncpg.PostgresError:
            # The server refused the statement and said so: the connection is idle again
            # (one the server closed is not kept: give_back checks).
            await self.give_back(conn, reusable=True)
            raise
        except BaseException:
            await self.give_back(conn, reusable=False)
            raise
        await self.give_back(conn, reusable=True)
        return rows

    def _release_if_unused(self) -> None:
        # One loop iteration after a call kept the connection: a call that followed at
        # once has taken it (and will schedule the next check); otherwise it goes back.
        self._check_pending = False
        conn, self._spare = self._spare, None
        if conn is not None:
            task = asyncio.get_running_loop().create_task(self._pool.release(conn))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def close(self) -> None:
        """Return the spare to the pool, and every connection given back from now on."""
        self._closed = True
        conn, self._spare = self._spare, None
        if conn is not None:
            await self._pool.release(conn)
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)


def _open(conn: Connection) -> bool:
    """Whether ``conn`` can take another statement. A connection the server closed may
    already be back in the pool (asyncpg returns it there as it closes): then calling it
    raises ``InterfaceError``."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False
