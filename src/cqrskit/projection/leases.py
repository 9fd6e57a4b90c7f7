"""Leases: which runner process is the active one for a projection.

In one process :class:`LocalLeases` is enough. With several runner processes on
PostgreSQL, :class:`PostgresLeases` holds a session advisory lock per projection on a
dedicated connection: when the process dies its connection closes, PostgreSQL releases the
lock, and a standby runner takes it on its next try (``retry`` seconds in the runner).
The checkpoint compare-and-set in every batch's commit is the second line of defence: a
runner that lost its lease without noticing cannot commit a batch anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from cqrskit.readstore._postgres import lock_key

__all__ = ["Lease", "Leases", "LocalLeases", "PostgresLeases"]

log = logging.getLogger("cqrskit.projection")


class Lease(Protocol):
    """The right to run one projection; ``lost`` is set if it is taken away."""

    @property
    def lost(self) -> asyncio.Event: ...

    async def release(self) -> None:
        """Give the lease up."""
        ...


class Leases(Protocol):
    """Grants leases; ``try_acquire`` never waits for another holder."""

    async def try_acquire(self, name: str) -> Lease | None:
        """The lease on ``name`` if it is free, else ``None``."""
        ...


class _LocalLease:
    def __init__(self, owner: LocalLeases, name: str) -> None:
        self._owner = owner
        self._name = name
        self._lost = asyncio.Event()

    @property
    def lost(self) -> asyncio.Event:
        return self._lost

    async def release(self) -> None:
        self._owner._held.discard(self._name)


class LocalLeases:
    """Leases within one process (the embedded default)."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    async def try_acquire(self, name: str) -> Lease | None:
        """The lease on ``name`` unless another runner in this process holds it."""
        if name in self._held:
            return None
        self._held.add(name)
        return _LocalLease(self, name)


class _PgLease:
    def __init__(self, conn: asyncpg.Connection, key: int, name: str, check: float) -> None:
        self._conn = conn
        self._key = key
        self._name = name
        self._lost = asyncio.Event()
        self._watch = asyncio.create_task(self._watch_connection(check))

    @property
    def lost(self) -> asyncio.Event:
        return self._lost

    async def _watch_connection(self, interval: float) -> None:
        # The lock lives as long as the session: a dead connection means a lost lease.
        try:
            while True:
                await asyncio.sleep(interval)
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), interval * 2)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("lease on %s lost: %s", self._name, exc)
            self._lost.set()

    async def release(self) -> None:
        self._watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watch
        with contextlib.suppress(Exception):
            await self._conn.execute("SELECT pg_advisory_unlock($1)", self._key)
        with contextlib.suppress(Exception):
            await self._conn.close()


class PostgresLeases:
    """One session advisory lock per projection, each on its own connection.

    ``check_interval`` is how often a held lease pings its connection to notice a loss.
    ``namespace`` sets apart the leases of services that share a database, each with
    projections of the same names (e.g. one per schema).
    """

    def __init__(self, url: str, check_interval: float = 1.0, namespace: str = "") -> None:
        # Options such as ?schema= are for stores; a lock needs only the server.
        self._url = urlunsplit(urlsplit(url)._replace(query=""))
        self._check = check_interval
        self._namespace = namespace

    async def try_acquire(self, name: str) -> Lease | None:
        """The lease on ``name`` if no other session holds its advisory lock."""
        # Advisory locks are per database: services sharing one (in schemas of their
        # own) tell their projections apart by namespace.
        scope = f"{self._namespace}:" if self._namespace else ""
        key = lock_key(f"cqrskit-projection:{scope}{name}")
        conn = await asyncpg.connect(self._url)
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return None
        return _PgLease(conn, key, name, self._check)
