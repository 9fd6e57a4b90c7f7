"""A small connection pool for the PostgreSQL event store.

asyncpg's ``Pool`` spends several event-loop turns and a task on every release (about
80 µs on a slow core, a tenth of a whole append); the store needs none of what that
buys: it never leaves session state behind. Here taking and returning an idle connection
are plain list operations. A connection that saw anything but a clean finish or a server
error (a cancellation, a broken socket) is closed rather than reused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

Connect = Callable[[], Awaitable["asyncpg.Connection[asyncpg.Record]"]]


_UNSAFE = (asyncio.CancelledError, OSError, TimeoutError, asyncpg.InterfaceError)


class PoolClosed(asyncpg.InterfaceError):
    """The pool was closed."""


class ConnectionPool:
    """Up to ``max_size`` connections, opened on demand, idle ones reused newest first."""

    def __init__(self, connect: Connect, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self._connect = connect
        self._max_size = max_size
        self._size = 0  # open or opening
        self._idle: list[asyncpg.Connection[asyncpg.Record]] = []
        self._waiters: deque[asyncio.Future[asyncpg.Connection[asyncpg.Record] | None]] = deque()
        self._closed = False

    async def fill(self, count: int) -> None:
        """Open connections until ``count`` are idle (or the pool is full)."""
        while len(self._idle) < count and self._size < self._max_size:
            self._size += 1
            try:
                conn = await self._connect()
            except BaseException:
                self._size -= 1
                raise
            self._idle.append(conn)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
        """A connection for the duration of the ``async with`` block."""
        conn = await self._take()
        try:
            yield conn
        except _UNSAFE:
            # Possibly mid-statement: the connection's state is unknown.
            self._discard(conn)
            raise
        except BaseException:
            # A server error or the caller's own: the connection is fine.
            self._give_back(conn)
            raise
        self._give_back(conn)

    async def _take(self) -> asyncpg.Connection[asyncpg.Record]:
        while True:
            if self._closed:
                raise PoolClosed("the event store was closed")
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    return conn
                self._size -= 1
            if self._size < self._max_size:
                self._size += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._size -= 1
                    self._wake_one(None)
                    raise
            waiter: asyncio.Future[asyncpg.Connection[asyncpg.Record] | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    # Handed a connection just as we were cancelled: pass it on.
                    passed = waiter.result()
                    if passed is not None:
                        self._give_back(passed)
                    else:
                        self._wake_one(None)
                raise
            if handed is not None:
                return handed
            # None: a slot opened up (a connection was closed); loop to open one.

    def _give_back(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        if self._closed or conn.is_closed() or conn.is_in_transaction():
            self._discard(conn)
            return
        if not self._wake_one(conn):
            self._idle.append(conn)

    def _discard(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        conn.terminate()
        self._size -= 1
        self._wake_one(None)

    def _wake_one(self, conn: asyncpg.Connection[asyncpg.Record] | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    async def close(self) -> None:
        """Close idle connections now and the others as they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._size -= 1
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosed("the event store was closed"))
