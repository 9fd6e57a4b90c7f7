"""Event stores: one protocol, several backends, opened from a URL.

>>> store = await open_event_store("sqlite:///var/orders/events.db", registry)
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from cqrskit.store._connect import masked_url, timeouts
from cqrskit.store.base import (
    ANY,
    NO_STREAM,
    START,
    AppendResult,
    EventPage,
    EventStore,
    Idempotency,
    Position,
    RecordedEvent,
    Snapshot,
    StreamAppend,
)
from cqrskit.store.memory import MemoryEventStore, MemoryStorage
from cqrskit.store.serialization import EventRegistry, UndecodableEvent, Upcaster
from cqrskit.store.sqlite import SqliteEventStore

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "AppendResult",
    "EventPage",
    "EventRegistry",
    "EventStore",
    "Idempotency",
    "MemoryEventStore",
    "MemoryStorage",
    "Position",
    "RecordedEvent",
    "Snapshot",
    "SqliteEventStore",
    "StreamAppend",
    "UndecodableEvent",
    "Upcaster",
    "open_event_store",
    "sqlite_path",
]


def sqlite_path(url: str) -> str:
    """The file path named by a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc:
        raise ValueError(f"not a sqlite URL (sqlite:///path/to/file.db): {url!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path or path == ":memory:":
        raise ValueError(f"a sqlite URL needs a file path (use memory:// for RAM): {url!r}")
    return path


async def open_event_store(
    url: str,
    registry: EventRegistry,
    *,
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
) -> EventStore:
    """Open the event store named by ``url``.

    - ``memory://`` — in process memory, gone when the process ends;
    - ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` — one durable file;
      query option ``synchronous`` (OFF, NORMAL, FULL; default FULL);
    - ``postgresql://user@host:port/db`` — PostgreSQL; query options ``schema``,
      ``notify``, ``max_connections``, ``connect_timeout`` (seconds a new connection may
      take, default 3) and ``command_timeout`` (seconds one statement may take, default 3).

    ``connect_timeout`` and ``command_timeout``, when given, override the URL's options
    (for a process that runs longer statements than the service, say); the memory and
    SQLite stores have no server to wait for and only check them. A bad option value
    raises :class:`~cqrskit.errors.StoreOptionError` naming it. A store that cannot be
    reached raises :class:`~cqrskit.errors.StoreUnavailable` (a ``ConnectionError``),
    naming the store and the URL with its password masked.
    """
    timeouts("event store", {}, connect_timeout, command_timeout)  # checked on every backend
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryEventStore(registry)
    if scheme == "sqlite":
        options = dict(parse_qsl(urlsplit(url).query))
        unknown = set(options) - {"synchronous"}
        if unknown:
            raise ValueError(f"unknown sqlite URL option(s): {', '.join(sorted(unknown))}")
        synchronous = options.get("synchronous", "FULL").upper()
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA: {url!r}")
        return await SqliteEventStore.open(
            sqlite_path(url),
            registry,
            synchronous=synchronous,  # type: ignore[arg-type]
        )
    if scheme in ("postgres", "postgresql"):
        from cqrskit.store.postgres import PostgresEventStore

        return await PostgresEventStore.open(
            url, registry, connect_timeout=connect_timeout, command_timeout=command_timeout
        )
    raise ValueError(
        f"unsupported event store URL {masked_url(url)!r}: use memory://, sqlite:///path or "
        "postgresql://"
    )
