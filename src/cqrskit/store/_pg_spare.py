"""One pooled connection kept out of asyncpg's pool between appends, to skip its hand-off.

Profiled, ``async with pool.acquire()`` costs ~55-70 µs of CPU per call on this project's
machines (release shields a new task, arms and cancels the idle-connection timer, resets
the holder): about a tenth of a one-event append. An append takes the spare connection
when it is free and gives it back afterwards; concurrent appends take pool connections as
before, so nothing queues behind the spare.

The spare is one of the pool's connections, checked out: the pool has one connection
fewer for everything else (never none: a pool of one connection keeps no spare, since
waiting for it could then wait on itself). Every :data:`RETURN_EVERY` uses it goes back
to the pool, so that the pool's own upkeep (``max_queries``, expiry) still reaches it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

__all__ = ["RETURN_EVERY", "SpareConnection"]

RETURN_EVERY: Final = 1000
"""Uses after which the spare goes back through the pool (one hand-off in a thousand)."""


class SpareConnection:
    """Lends one of ``pool``'s connections to one caller at a time, others get the pool's."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._spare: Connection | None = None
        self._uses = 0
        self._keep = pool.get_max_size() > 1
        self._closed = False

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
            return
        await self._pool.release(conn)

    async def close(self) -> None:
        """Return the spare to the pool, and every connection given back from now on."""
        self._closed = True
        conn, self._spare = self._spare, None
        if conn is not None:
            await self._pool.release(conn)


def _open(conn: Connection) -> bool:
    """Whether ``conn`` can take another statement. A connection the server closed may
    already be back in the pool (asyncpg returns it there as it closes): then calling it
    raises ``InterfaceError``."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False
