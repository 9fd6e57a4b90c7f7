"""Read stores: where projections keep read models, checkpoints and parked events.

>>> store = await open_sql_read_store("sqlite:///var/orders/read.db")
>>> rows = await store.query("order_summary", "SELECT * FROM {orders} WHERE id = ?", order_id)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from cqrskit.readstore.base import (
    CheckpointConflict,
    ParkedEvent,
    ProjectionSpec,
    ReadStore,
    ReadTransaction,
    physical_table,
)
from cqrskit.readstore.memory import MemoryReadStore, MemoryUnitOfWork
from cqrskit.readstore.redis import REDIS_TIMEOUT, RedisReadStore, RedisUnitOfWork
from cqrskit.readstore.sql import SqlReadStore, SqlUnitOfWork
from cqrskit.store._connect import (
    SQLITE_OPEN_ERRORS,
    Timeouts,
    connecting,
    masked_url,
    positive_number,
    timeouts,
)

__all__ = [
    "CheckpointConflict",
    "MemoryReadStore",
    "MemoryUnitOfWork",
    "ParkedEvent",
    "ProjectionSpec",
    "ReadStore",
    "ReadTransaction",
    "RedisReadStore",
    "RedisUnitOfWork",
    "SqlReadStore",
    "SqlUnitOfWork",
    "open_read_store",
    "open_redis_read_store",
    "open_sql_read_store",
    "physical_table",
]


def _number(options: dict[str, str], name: str, default: str, kind: type[float] | type[int]) -> Any:
    value = positive_number(
        name, options.get(name, default), where="read store URL option", integer=kind is int
    )
    return kind(value)


def _options(url: str, allowed: set[str]) -> dict[str, str]:
    options = dict(parse_qsl(urlsplit(url).query))
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"unknown read store URL option(s): {', '.join(sorted(unknown))}")
    return options


async def open_read_store(
    url: str, *, connect_timeout: float | None = None, command_timeout: float | None = None
) -> ReadStore[Any]:
    """Open the read store named by ``url``.

    - ``memory://`` — :class:`MemoryReadStore`;
    - ``sqlite:///relative.db`` / ``sqlite:////absolute.db`` — :class:`SqlReadStore` on its
      own SQLite file (WAL); options ``synchronous`` (default NORMAL) and ``poll_interval``
      (seconds; how soon waiters notice commits made by *other processes*, default 1);
    - ``postgresql://user@host/db?schema=name`` — :class:`SqlReadStore` on PostgreSQL;
      options ``schema`` (default ``public``), ``pool_size`` (default 5),
      ``connect_timeout`` (seconds, default 3) and ``command_timeout`` (seconds one
      statement may take, default 3);
    - ``redis://host:port/db?prefix=cqrskit:`` — :class:`RedisReadStore`; options
      ``prefix`` and ``timeout`` (seconds to connect, and for one reply; default 4).

    ``connect_timeout`` and ``command_timeout`` (seconds to connect, and for one
    statement or reply), when given, override the URL's options (for a process that runs
    longer statements than the service, say); the memory and SQLite stores only check
    them. A bad option value raises :class:`~cqrskit.errors.StoreOptionError` naming it.

    To get the concrete type, use :func:`open_sql_read_store` or
    :func:`open_redis_read_store`, which check the URL's kind.
    """
    timeouts("read store", {}, connect_timeout, command_timeout)  # checked on every backend
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme == "memory":
        return MemoryReadStore()
    if scheme == "sqlite":
        from cqrskit.readstore._sqlite import SqliteDriver
        from cqrskit.store import sqlite_path

        options = _options(url, {"synchronous", "poll_interval"})
        synchronous = options.get("synchronous", "NORMAL").upper()
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA: {url!r}")
        path = sqlite_path(url.split("?", 1)[0])
        poll_interval = _number(options, "poll_interval", "1.0", float)
        async with connecting("SQLite read store", path, SQLITE_OPEN_ERRORS):
            sqlite_store = SqlReadStore(
                SqliteDriver(path, synchronous), poll_interval=poll_interval
            )
            try:
                await sqlite_store.create_meta()
            except BaseException:
                await sqlite_store.close()
                raise
        return sqlite_store
    if scheme in ("postgres", "postgresql"):
        from cqrskit.readstore._postgres import PostgresDriver

        options = _options(url, {"schema", "pool_size", "connect_timeout", "command_timeout"})
        schema = options.get("schema", "public")
        limits = timeouts("read store", options, connect_timeout, command_timeout)
        driver = await PostgresDriver.connect(
            urlunsplit(parts._replace(query="")),
            schema,
            _number(options, "pool_size", "5", int),
            connect_timeout=limits.connect,
            command_timeout=limits.command,
        )
        pg_store = SqlReadStore(driver)
        try:
            await pg_store.create_meta()
        except BaseException:
            await pg_store.close()
            raise
        return pg_store
    if scheme in ("redis", "rediss", "unix"):
        options = _options(url, {"prefix", "timeout"})
        prefix = options.get("prefix", "cqrskit:")
        both = _number(options, "timeout", str(REDIS_TIMEOUT), float)
        limits = timeouts(
            "read store", {}, connect_timeout, command_timeout, defaults=Timeouts(both, both)
        )
        return await RedisReadStore.open(
            urlunsplit(parts._replace(query="")),
            prefix,
            timeout=limits.command,
            connect_timeout=limits.connect,
        )
    raise ValueError(
        f"unsupported read store URL {masked_url(url)!r}: use memory://, sqlite:///path, "
        "postgresql://... or redis://..."
    )


async def open_sql_read_store(
    url: str, *, connect_timeout: float | None = None, command_timeout: float | None = None
) -> SqlReadStore:
    """Like :func:`open_read_store`, for a ``sqlite://`` or ``postgresql://`` URL only."""
    if urlsplit(url).scheme not in ("sqlite", "postgres", "postgresql"):
        raise ValueError(
            "expected a SQL read store URL (sqlite:///path or postgresql://...), "
            f"not {masked_url(url)!r}"
        )
    store = await open_read_store(
        url, connect_timeout=connect_timeout, command_timeout=command_timeout
    )
    if not isinstance(store, SqlReadStore):  # pragma: no cover - the scheme decides
        raise TypeError(f"{masked_url(url)!r} opened a {type(store).__name__}")
    return store


async def open_redis_read_store(
    url: str, *, connect_timeout: float | None = None, command_timeout: float | None = None
) -> RedisReadStore:
    """Like :func:`open_read_store`, for a ``redis://``, ``rediss://`` or ``unix://`` URL only."""
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"expected a Redis read store URL (redis://host:port/db), not {masked_url(url)!r}"
        )
    store = await open_read_store(
        url, connect_timeout=connect_timeout, command_timeout=command_timeout
    )
    if not isinstance(store, RedisReadStore):  # pragma: no cover - the scheme decides
        raise TypeError(f"{masked_url(url)!r} opened a {type(store).__name__}")
    return store
