"""PostgreSQL stores' timeouts: set from the URL or by keyword, bounding the service's
statements, but neither a migration (which may wait for another process's) nor a
verify's whole-table read (which may take long on a large model)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from cqrskit.projection import ProjectionRunner
from cqrskit.projection.testing import Ticked, harness_for, tick_registry
from cqrskit.projection.verify import verify_projection
from cqrskit.readstore import open_sql_read_store
from cqrskit.store import MemoryEventStore, _pg_schema, open_event_store
from cqrskit.store.postgres import PostgresEventStore
from cqrskit.testing import contract_registry

pytestmark = pytest.mark.postgres

SHORT = 0.5
"""A statement timeout the tests hold locks for longer than."""
HELD = 1.5
"""Seconds a lock is held against the store: three times :data:`SHORT`."""
LIVENESS = 20.0
"""Generous bound for a timed-out statement to fail (asyncpg also waits for the cancel)."""


@pytest.fixture
async def raw(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_url)
    yield conn
    await conn.close()


async def locked(raw: asyncpg.Connection, table: str) -> asyncpg.transaction.Transaction:
    """``table`` locked against every reader until the returned transaction ends."""
    tx = raw.transaction()
    await tx.start()
    await raw.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return tx


async def test_the_event_store_url_sets_its_statement_timeout(
    postgres_url: str, pg_schema: str, raw: asyncpg.Connection
) -> None:
    url = f"{postgres_url}?schema={pg_schema}&command_timeout={SHORT}&connect_timeout=5"
    store = await open_event_store(url, contract_registry())
    try:
        tx = await locked(raw, f'"{pg_schema}".events')
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                await store.head()
        finally:
            await tx.rollback()
        assert time.monotonic() - started < LIVENESS
        await store.head()
    finally:
        await store.close()


async def test_a_keyword_timeout_overrides_the_url(
    postgres_url: str, pg_schema: str, raw: asyncpg.Connection
) -> None:
    """A process that runs longer statements than the service (a tool, a report) opens
    the service's URL with a timeout of its own."""
    url = f"{postgres_url}?schema={pg_schema}&command_timeout={SHORT}"
    store = await open_event_store(url, contract_registry(), command_timeout=30)
    try:
        tx = await locked(raw, f'"{pg_schema}".events')
        reading = asyncio.create_task(store.head())
        await asyncio.sleep(HELD)
        assert not reading.done()
        await tx.rollback()
        await asyncio.wait_for(reading, LIVENESS)
    finally:
        await store.close()


async def test_a_migration_is_not_bound_by_the_statement_timeout(
    postgres_url: str, pg_schema: str, raw: asyncpg.Connection
) -> None:
    """Another process migrating the schema holds its lock longer than a statement may
    take: opening waits for it, then the store's own statements are bounded again."""
    await raw.execute("SELECT pg_advisory_lock($1)", _pg_schema._lock_key(pg_schema))
    opening = asyncio.create_task(
        PostgresEventStore.open(
            f"{postgres_url}?schema={pg_schema}",
            contract_registry(),
            connect_options={"command_timeout": SHORT},
        )
    )
    try:
        await asyncio.sleep(HELD)
        assert not opening.done()
    finally:
        await raw.execute("SELECT pg_advisory_unlock($1)", _pg_schema._lock_key(pg_schema))
    store = await asyncio.wait_for(opening, LIVENESS)
    try:
        assert await store.stream_version("s") == 0
        tx = await locked(raw, f'"{pg_schema}".events')
        try:
            with pytest.raises(TimeoutError):
                await store.head()
        finally:
            await tx.rollback()
    finally:
        await store.close()


async def test_a_verify_reads_a_whole_model_beyond_the_statement_timeout(
    postgres_url: str, pg_schema: str, raw: asyncpg.Connection
) -> None:
    """The live table is locked (think: a model too large to read in a few seconds) for
    longer than the read store's statements may take; the verify waits and finds it
    healthy, and a reader's query of it is still bounded."""
    store = await open_sql_read_store(f"{postgres_url}?schema={pg_schema}&command_timeout={SHORT}")
    events = MemoryEventStore(tick_registry())
    try:
        harness = harness_for(store)
        tally = harness.tally()
        for stream in ("a", "b", "c"):
            await events.append(stream, [Ticked()])
        runner = ProjectionRunner(events, registry=CollectorRegistry())
        runner.add(tally, store)
        async with runner:
            (await runner.wait_for("tally", await events.head(), 10)).raise_if_timed_out()
        [table] = await raw.fetch(
            f'SELECT t.physical FROM "{pg_schema}".cqrskit_projection_tables t '
            f'JOIN "{pg_schema}".cqrskit_projections p ON p.projection = t.projection '
            "AND p.live_version = t.version WHERE t.projection = 'tally'"
        )
        tx = await locked(raw, f'"{pg_schema}"."{table["physical"]}"')
        try:
            with pytest.raises(TimeoutError):
                await harness.counts()
            verifying = asyncio.create_task(verify_projection(events, store, tally))
            await asyncio.sleep(HELD)
            assert not verifying.done()
        finally:
            await tx.rollback()
        report = await asyncio.wait_for(verifying, LIVENESS)
        assert (report.compared, report.differences) == (3, [])
    finally:
        await store.close()
        await events.close()
