"""The PostgreSQL store's version checks stay index lookups whatever the statistics say.

A server without autovacuum (as CI's is) keeps the statistics it took while the events
table was empty. A prepared statement then settles, within its first executions, on a
generic plan costed for an empty table (a sequential scan), and keeps it as the table
grows: every append reads the whole table. The checks count scans, never time: the
transaction-level counters of ``pg_stat_xact_user_tables`` show what the statements of
the transaction did to the events table, on the very connection that made its plans while
the table was empty.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import pytest

from cqrskit.store import NO_STREAM, StreamAppend
from cqrskit.store._pg_schema import _migrations
from cqrskit.store.postgres import PostgresEventStore
from cqrskit.testing import Noted, contract_registry

if TYPE_CHECKING:
    from cqrskit.store._pg_schema import Connection

pytestmark = pytest.mark.postgres

GROWN_TO = 30_000
"""Events in the table when the plans are checked: a sequential scan then reads hundreds
of pages where an index lookup reads a handful."""

Statement = Callable[["Connection"], Awaitable[object]]


@pytest.fixture
async def store(postgres_url: str, pg_schema: str) -> AsyncIterator[PostgresEventStore]:
    """A store with one connection (so the connection checked is the one that planned
    while the table was empty), statistics taken on the empty table, no autovacuum."""
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={pg_schema}"
    opened = await PostgresEventStore.open(
        url, contract_registry(), min_connections=1, max_connections=1
    )
    raw = await asyncpg.connect(postgres_url)
    try:
        await raw.execute(
            f'ALTER TABLE "{pg_schema}".events SET (autovacuum_enabled = false, '
            "toast.autovacuum_enabled = false)"
        )
        await raw.execute(f'ANALYZE "{pg_schema}".events')
        assert await raw.fetchval(
            "SELECT reltuples FROM pg_class WHERE oid = $1::regclass", f'"{pg_schema}".events'
        ) in (0, -1)
    finally:
        await raw.close()
    yield opened
    await opened.close()


def _events(count: int) -> list[Noted]:
    return [Noted(text=f"event {n}") for n in range(count)]


def _stream() -> str:
    return f"s-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Scans:
    """What statements did to the events table: scans made and rows they read."""

    sequential: int
    index: int
    rows_read: int


async def _scans(store: PostgresEventStore, statement: Statement) -> Scans:
    """The scans ``statement`` made of the events table, run in a transaction on the
    store's connection. The counters may also hold earlier transactions' counts not yet
    sent to the statistics system (which happens only between transactions), hence the
    difference taken within one transaction."""
    relation = f'"{store.schema}".events'
    counters = (
        "SELECT seq_scan, coalesce(idx_scan, 0), seq_tup_read + coalesce(idx_tup_fetch, 0) "
        "FROM pg_stat_xact_user_tables WHERE relid = $1::regclass"
    )
    async with store._pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(counters, relation)
        await statement(conn)
        after = await conn.fetchrow(counters, relation)
    assert before is not None
    assert after is not None
    return Scans(*(int(a) - int(b) for a, b in zip(after, before, strict=True)))


def _append(store: PostgresEventStore, appends: list[StreamAppend]) -> Statement:
    """The store's own append (the statement or function it would run) on ``conn``."""

    async def run(conn: Connection) -> object:
        encoded = store._encode(appends)
        return await store._append_on(conn, encoded, [a.stream_id for a in appends], None)

    return run


class _Streams:
    """Streams each path appends to, with the versions they are at."""

    def __init__(self) -> None:
        self.single, self.batch = _stream(), _stream()
        self.pair = sorted([_stream(), _stream()])
        self.versions: dict[str, int] = {}

    def one(self) -> list[StreamAppend]:
        return [self._next(self.single, 1)]

    def ten(self) -> list[StreamAppend]:
        return [self._next(self.batch, 10)]

    def two_streams(self) -> list[StreamAppend]:
        return [self._next(stream, 3) for stream in self.pair]

    def _next(self, stream: str, count: int) -> StreamAppend:
        version = self.versions.get(stream, NO_STREAM)
        self.versions[stream] = max(version, 0) + count
        return StreamAppend(stream, _events(count), version)


@pytest.mark.slow
async def test_version_checks_stay_index_lookups_as_the_table_outgrows_its_statistics(
    store: PostgresEventStore,
) -> None:
    streams = _Streams()
    paths = {"1 event": streams.one, "10 events": streams.ten, "2 streams": streams.two_streams}
    # The plan cache settles on a plan within a statement's first executions: make them
    # while the table is (nearly) empty, as on a freshly migrated production store.
    for _ in range(12):
        for appends in paths.values():
            await store.append_many(appends())
        await store.read_stream(streams.batch)
        await store.stream_version(streams.batch)
    # Grow the table through the store (100-event appends, the function's path).
    for n in range(GROWN_TO // 100):
        await store.append(f"fill-{n}", _events(100), NO_STREAM)

    for path, appends in paths.items():
        for _ in range(3):
            batch = appends()
            scans = await _scans(store, _append(store, batch))
            assert scans.sequential == 0, f"{path}: the version check read the whole table"
            assert scans.index == len(batch), f"{path}: not one index lookup per stream"
            # The last entry of each stream's index, not every entry of the stream.
            assert scans.rows_read <= len(batch), f"{path}: read {scans.rows_read} rows"

    # Loading an aggregate reads its stream through the same index, and only that.
    stream = streams.batch
    length = streams.versions[stream]
    for _ in range(3):
        scans = await _scans(store, lambda conn: conn.fetch(store._sql_read_stream, stream, 1))
        assert (scans.sequential, scans.rows_read) == (0, length), "read_stream"
        scans = await _scans(store, lambda conn: conn.fetchval(store._sql_version, stream))
        assert (scans.sequential, scans.rows_read) == (0, 1), "stream_version"
    assert len(await store.read_stream(stream)) == length


async def test_a_store_made_before_the_index_only_version_check_is_upgraded(
    postgres_url: str, pg_schema: str
) -> None:
    raw = await asyncpg.connect(postgres_url)
    try:
        # The schema as the first release left it: migration 1 only.
        s = f'"{pg_schema}"'
        async with raw.transaction():
            await raw.execute(f"CREATE SCHEMA {s}")
            await raw.execute(
                f"CREATE TABLE {s}.schema_migrations (version integer PRIMARY KEY, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await raw.execute(_migrations(s)[0])
            await raw.execute(f"INSERT INTO {s}.schema_migrations (version) VALUES (1)")
        url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={pg_schema}"
        store = await PostgresEventStore.open(url, contract_registry())
        try:
            function = await raw.fetchval(
                "SELECT prosrc FROM pg_proc WHERE proname = 'append_events' "
                "AND pronamespace = $1::regnamespace",
                s,
            )
            assert "ORDER BY e.version DESC LIMIT 1" in function
            stream = _stream()
            await store.append(stream, _events(10), NO_STREAM)
            assert (await store.append(stream, _events(10), 10)).version == 20
        finally:
            await store.close()
        migrations = await raw.fetchval(f"SELECT max(version) FROM {s}.schema_migrations")
        assert migrations == len(_migrations(s))
    finally:
        await raw.close()
