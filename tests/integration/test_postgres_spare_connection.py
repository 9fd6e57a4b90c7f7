"""The PostgreSQL event store keeps one pooled connection between calls in a row (the
spare), skipping the pool's hand-off; it must never starve the pool, outlive the store, or
be kept when a call may have left it mid-query or broken."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from cqrskit.errors import ConcurrencyError
from cqrskit.store import NO_STREAM
from cqrskit.store._pg_spare import RETURN_EVERY, SpareConnection
from cqrskit.store.postgres import PostgresEventStore
from cqrskit.testing import Noted

pytestmark = pytest.mark.postgres

Opener = Callable[..., Awaitable[PostgresEventStore]]


def _spare(store: PostgresEventStore) -> SpareConnection:
    return store._appender._connections


def _stream() -> str:
    return f"s-{uuid.uuid4().hex}"


async def test_consecutive_appends_share_one_connection(open_pg: Opener) -> None:
    store = await open_pg()
    await store.append(_stream(), [Noted(text="1")], NO_STREAM)
    kept = _spare(store)._spare
    assert kept is not None
    pid = kept.get_server_pid()
    for n in range(5):
        await store.append(_stream(), [Noted(text=str(n))], NO_STREAM)
    assert _spare(store)._spare is kept
    assert kept.get_server_pid() == pid


async def test_a_version_mismatch_keeps_the_spare(open_pg: Opener) -> None:
    store = await open_pg()
    stream = _stream()
    await store.append(stream, [Noted(text="1")], NO_STREAM)
    kept = _spare(store)._spare
    with pytest.raises(ConcurrencyError):
        await store.append(stream, [Noted(text="again")], NO_STREAM)
    assert _spare(store)._spare is kept


async def test_concurrent_appends_use_the_pool_beside_the_spare(open_pg: Opener) -> None:
    store = await open_pg(max_connections=4)
    results = await asyncio.gather(
        *(store.append(_stream(), [Noted(text=str(n))], NO_STREAM) for n in range(12))
    )
    assert [r.version for r in results] == [1] * 12


async def test_a_pool_of_one_connection_keeps_no_spare(open_pg: Opener) -> None:
    store = await open_pg(max_connections=1)
    stream = _stream()
    await store.append(stream, [Noted(text="1")], NO_STREAM)
    assert _spare(store)._spare is None
    # Were the only connection kept aside, this read would wait for it forever.
    assert len(await asyncio.wait_for(store.read_stream(stream), 5)) == 1


async def test_closing_returns_the_spare_so_the_pool_closes_at_once(open_pg: Opener) -> None:
    store = await open_pg()
    await store.append(_stream(), [Noted(text="1")], NO_STREAM)
    assert _spare(store)._spare is not None
    await asyncio.wait_for(store.close(), 5)
    assert _spare(store)._spare is None


async def test_a_connection_the_server_closed_is_not_kept(
    open_pg: Opener, postgres_url: str
) -> None:
    store = await open_pg()
    spare = _spare(store)
    conn = await spare.take()
    admin = await asyncpg.connect(postgres_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    finally:
        await admin.close()
    await asyncio.sleep(0.2)  # the client sees the socket close
    await spare.give_back(conn, reusable=True)
    assert spare._spare is None
    assert (await store.append(_stream(), [Noted(text="2")], NO_STREAM)).version == 1


async def test_a_spare_closed_while_kept_is_replaced(open_pg: Opener) -> None:
    store = await open_pg()
    spare = _spare(store)
    conn = await spare.take()
    await spare.give_back(conn, reusable=True)
    assert spare._spare is conn
    conn.terminate()  # before the loop goes round, so it is still the spare
    fresh = await spare.take()
    assert fresh is not conn
    assert await fresh.fetchval("SELECT 1") == 1
    await spare.give_back(fresh, reusable=True)
    assert (await store.append(_stream(), [Noted(text="2")], NO_STREAM)).version == 1


async def test_an_idle_store_hands_the_spare_back(open_pg: Opener) -> None:
    store = await open_pg(notify="in_transaction")
    await store.append(_stream(), [Noted(text="1")], NO_STREAM)
    assert _spare(store)._spare is not None
    await asyncio.sleep(0)
    assert _spare(store)._spare is None
    await asyncio.gather(*_spare(store)._releases)  # the pool's release runs as a task
    assert store._pool.get_idle_size() == store._pool.get_size()


async def test_an_append_cancelled_mid_statement_gives_its_connection_to_the_pool(
    open_pg: Opener, pg_schema: str, postgres_url: str
) -> None:
    store = await open_pg()
    stream = _stream()
    blocker = await asyncpg.connect(postgres_url)
    try:
        # The append's insert waits for the table lock until the test cancels it.
        await blocker.execute("BEGIN")
        await blocker.execute(f'LOCK TABLE "{pg_schema}".events IN EXCLUSIVE MODE')
        append = asyncio.create_task(store.append(stream, [Noted(text="mine")], NO_STREAM))
        await asyncio.sleep(0.2)  # long enough to be waiting in its statement
        append.cancel()
        with pytest.raises(asyncio.CancelledError):
            await append
        assert _spare(store)._spare is None
        await blocker.execute("ROLLBACK")
    finally:
        await blocker.close()
    assert (await store.append(stream, [Noted(text="again")], NO_STREAM)).version == 1


async def test_the_spare_goes_back_through_the_pool_now_and_then(open_pg: Opener) -> None:
    store = await open_pg()
    spare = _spare(store)
    await store.append(_stream(), [Noted(text="1")], NO_STREAM)
    spare._uses = RETURN_EVERY - 1  # the next use is the one that returns it
    kept = spare._spare
    conn = await spare.take()
    assert conn is kept
    await spare.give_back(conn, reusable=True)
    assert spare._spare is None
    await store.append(_stream(), [Noted(text="2")], NO_STREAM)
    assert spare._spare is not None
