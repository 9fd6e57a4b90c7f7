"""PostgreSQL event store behaviour the contract suite cannot reach: races settled by the
unique constraints, events held back by open transactions, lost connections, migrations."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from cqrskit.errors import ConcurrencyError
from cqrskit.store import (
    ANY,
    NO_STREAM,
    Idempotency,
    StreamAppend,
    _pg_schema,
    open_event_store,
)
from cqrskit.store.postgres import EventStoreConnectionLost, PostgresEventStore
from cqrskit.testing import Noted, contract_registry

pytestmark = pytest.mark.postgres

Opener = Callable[..., Awaitable[PostgresEventStore]]


def _url(postgres_url: str, schema: str) -> str:
    return f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"


@pytest.fixture
async def raw(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_url)
    yield conn
    await conn.close()


def _stream(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


async def _insert_uncommitted(raw: asyncpg.Connection, schema: str, stream: str) -> None:
    """Open a transaction on ``raw`` holding version 1 of ``stream``, not yet committed."""
    await raw.execute("BEGIN")
    await raw.execute(
        f'INSERT INTO "{schema}".events (stream_id, version, event_type, schema_version, '
        "data, metadata) VALUES ($1, 1, 'contract.Noted', 1, $2, $3)",
        stream,
        '{"text": "raw"}',
        Noted(text="raw").metadata.model_dump_json(),
    )


async def _blocked_by(raw: asyncpg.Connection, blocker_pid: int) -> int:
    """The backend waiting on a lock ``blocker_pid`` holds (polls until there is one)."""
    for _ in range(500):
        pid = await raw.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", blocker_pid
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.01)
    raise AssertionError("no backend got blocked")


async def test_lost_race_on_the_unique_constraint_reports_the_re_read_version(
    open_pg: Opener, pg_schema: str, postgres_url: str
) -> None:
    store = await open_pg()
    stream = _stream()
    blocker = await asyncpg.connect(postgres_url)
    try:
        await _insert_uncommitted(blocker, pg_schema, stream)
        # The version check sees no stream; the insert then waits on the unique index.
        append = asyncio.create_task(store.append(stream, [Noted(text="mine")], NO_STREAM))
        await _blocked_by(blocker, blocker.get_server_pid())
        await blocker.execute("COMMIT")
        with pytest.raises(ConcurrencyError) as caught:
            await append
        assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (
            stream,
            NO_STREAM,
            1,
        )
        # The same race at version ANY is retried and lands after the winner.
        await _insert_uncommitted(blocker, pg_schema, other := _stream())
        append = asyncio.create_task(store.append(other, [Noted(text="mine")], ANY))
        await _blocked_by(blocker, blocker.get_server_pid())
        await blocker.execute("COMMIT")
        assert (await append).version == 2
        assert [getattr(r.event, "text", None) for r in await store.read_stream(other)] == [
            "raw",
            "mine",
        ]
    finally:
        await blocker.close()


async def test_concurrent_repeat_on_the_idempotency_key_returns_the_first_result(
    open_pg: Opener, postgres_url: str
) -> None:
    store = await open_pg()
    first_handle = await open_pg()
    key = uuid.uuid4().hex
    blocker = await asyncpg.connect(postgres_url)
    try:
        # Hold the first append open, its idempotency row written but not committed, by
        # running it inside a transaction this test controls.
        await blocker.execute("BEGIN")
        first = await first_handle._append_on(
            blocker,
            first_handle._encode([StreamAppend(_stream("a"), [Noted(text="first")])]),
            [],
            Idempotency(key, "first"),
        )
        repeat_stream = _stream("b")
        repeat = asyncio.create_task(
            store.append(repeat_stream, [Noted(text="repeat")], idempotency=Idempotency(key))
        )
        await _blocked_by(blocker, blocker.get_server_pid())
        await blocker.execute("COMMIT")
        replayed = await repeat
        assert replayed.replayed
        assert (replayed.position, replayed.result_id) == (first.position, "first")
        assert await store.stream_version(repeat_stream) == 0
    finally:
        await blocker.close()


@pytest.mark.parametrize("wait", ["wait_for_events", "next_events"])
async def test_waiters_hold_back_events_an_older_open_transaction_could_precede(
    open_pg: Opener, raw: asyncpg.Connection, wait: str
) -> None:
    store = await open_pg(poll_interval=30.0)
    head = await store.head()
    await raw.execute("BEGIN")
    older = await raw.fetchval("SELECT pg_current_xact_id()")
    waiter = asyncio.create_task(getattr(store, wait)(head, timeout=10))
    result = await store.append(_stream(), [Noted(text="later")])
    assert result.position.commit > older
    await asyncio.sleep(0.3)
    # Committed, notified, but not readable: an append by the open transaction would get
    # a smaller transaction id and sort before it.
    assert not waiter.done()
    assert await store.read_all(head) == []
    assert await store.head() == head
    loop = asyncio.get_running_loop()
    await raw.execute("ROLLBACK")
    ended = loop.time()
    woken = await waiter
    assert loop.time() - ended < 0.5, "the waiter should re-check soon, not at the next poll"
    if wait == "next_events":
        assert [r.position for r in woken] == [result.position]
    else:
        assert woken is True
    assert [r.position for r in await store.read_all(head)] == [result.position]
    assert await store.head() == result.position


async def test_a_waiter_held_back_for_long_names_the_open_transaction(
    open_pg: Opener, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_pg(poll_interval=30.0)
    store.held_back_warning = 0.2
    head = await store.head()
    await raw.execute("BEGIN")
    await raw.fetchval("SELECT pg_current_xact_id()")
    await store.append(_stream(), [Noted(text="held back")])
    with caplog.at_level(logging.WARNING, logger="cqrskit.store.postgres"):
        assert await store.next_events(head, timeout=0.6) == []
    await raw.execute("ROLLBACK")
    warnings = [r.getMessage() for r in caplog.records if "held back" in r.getMessage()]
    assert warnings, "no warning about the open transaction"
    assert f"pid {raw.get_server_pid()}" in warnings[0]
    assert [e.event.text for e in await store.next_events(head, timeout=1)] == ["held back"]


async def test_waiter_wakes_after_the_listener_connection_is_killed(
    open_pg: Opener, raw: asyncpg.Connection
) -> None:
    # A long poll interval: only a notification can wake the waiter in time.
    reader = await open_pg(poll_interval=30.0)
    writer = await open_pg()
    head = await reader.head()
    waiter = asyncio.create_task(reader.wait_for_events(head, timeout=20))
    listener = reader._listener
    await asyncio.wait_for(listener.connected.wait(), 5)
    killed = listener.server_pid
    assert killed is not None
    assert await raw.fetchval("SELECT pg_terminate_backend($1)", killed)
    for _ in range(500):
        if listener.server_pid not in (None, killed) and listener.connected.is_set():
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the listener did not reconnect")
    await asyncio.sleep(0.1)
    assert not waiter.done()
    loop = asyncio.get_running_loop()
    await writer.append(_stream(), [Noted(text="wake")])
    appended = loop.time()
    assert await waiter is True
    assert loop.time() - appended < 0.5


async def test_connection_lost_mid_append_leaves_nothing_behind(
    open_pg: Opener, pg_schema: str, postgres_url: str, raw: asyncpg.Connection
) -> None:
    store = await open_pg()
    head = await store.head()
    # Sorted stream order: the "a" row is inserted before the insert of "z" waits.
    first, blocked = _stream("a"), _stream("z")
    blocker = await asyncpg.connect(postgres_url)
    try:
        await _insert_uncommitted(blocker, pg_schema, blocked)
        append = asyncio.create_task(
            store.append_many(
                [
                    StreamAppend(blocked, [Noted(text="z1")], NO_STREAM),
                    StreamAppend(first, [Noted(text="a1"), Noted(text="a2")], NO_STREAM),
                ]
            )
        )
        victim = await _blocked_by(raw, blocker.get_server_pid())
        assert await raw.fetchval("SELECT pg_terminate_backend($1)", victim)
        with pytest.raises(EventStoreConnectionLost):
            await append
        await blocker.execute("ROLLBACK")
    finally:
        await blocker.close()
    assert await store.stream_version(first) == 0
    assert await store.stream_version(blocked) == 0
    assert await store.read_all(head) == []
    # The pool replaces the dead connection: the store keeps working.
    assert (await store.append(first, [Noted(text="again")], NO_STREAM)).version == 1


async def test_migrations_are_safe_when_processes_start_together(
    postgres_url: str, pg_schema: str, raw: asyncpg.Connection
) -> None:
    url = _url(postgres_url, pg_schema)
    stores = await asyncio.gather(*(open_event_store(url, contract_registry()) for _ in range(6)))
    try:
        await stores[0].append(_stream(), [Noted(text="x")])
        reopened = await open_event_store(url, contract_registry())
        await stores[0].close()
        stores[0] = reopened
        assert len(await reopened.read_all()) == 1
        # Six concurrent openers applied each migration exactly once.
        applied = await raw.fetchval(f'SELECT count(*) FROM "{pg_schema}".schema_migrations')
        assert applied == len(_pg_schema._migrations('"x"'))
    finally:
        for store in stores:
            await store.close()


async def test_url_options_other_than_schema_reach_the_server(
    postgres_url: str, pg_schema: str
) -> None:
    url = f"{_url(postgres_url, pg_schema)}&application_name=cqrskit-url-test"
    store = await PostgresEventStore.open(url, contract_registry())
    try:
        assert store.schema == pg_schema
        async with store._pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == "cqrskit-url-test"
    finally:
        await store.close()
    with pytest.raises(ValueError, match="plain identifier"):
        await PostgresEventStore.open(f"{postgres_url}?schema=a-b", contract_registry())
    # The store's own options may come in the URL too; keyword arguments win.
    tuned = await PostgresEventStore.open(
        f"{_url(postgres_url, pg_schema)}&notify=after_commit&max_connections=3",
        contract_registry(),
    )
    try:
        assert (tuned._appender.notify, tuned._pool.get_max_size()) == ("after_commit", 3)
        await tuned.append(_stream(), [Noted(text="via url options")])
    finally:
        await tuned.close()
    overridden = await PostgresEventStore.open(
        f"{_url(postgres_url, pg_schema)}&notify=after_commit",
        contract_registry(),
        notify="in_transaction",
    )
    await overridden.close()
    assert overridden._appender.notify == "in_transaction"
    with pytest.raises(ValueError, match="notify must be"):
        await PostgresEventStore.open(f"{postgres_url}?notify=sometimes", contract_registry())


@pytest.mark.parametrize("notify", ["after_commit", "in_transaction"])
async def test_notifications_wake_other_handles(open_pg: Opener, notify: str) -> None:
    reader = await open_pg(poll_interval=30.0)
    writer = await open_pg(notify=notify)
    head = await reader.head()
    waiter = asyncio.create_task(reader.wait_for_events(head, timeout=20))
    await asyncio.wait_for(reader._listener.connected.wait(), 5)
    await asyncio.sleep(0.05)
    assert not waiter.done()
    loop = asyncio.get_running_loop()
    # after_commit: several appends at once share one NOTIFY; the reader must still wake.
    await asyncio.gather(*(writer.append(_stream(), [Noted(text="n")]) for _ in range(5)))
    appended = loop.time()
    assert await waiter is True
    assert loop.time() - appended < 0.5


async def test_recorded_times_read_back_exactly_as_stored(
    open_pg: Opener, raw: asyncpg.Connection, pg_schema: str
) -> None:
    # Reads fetch the time as microseconds since the epoch (cheaper to decode than a
    # timestamptz): it must come back as the very instant stored, in UTC, near or far.
    store = await open_pg()
    stream = _stream()
    await store.append(stream, [Noted(text=str(n)) for n in range(3)])
    stored = [
        "1900-01-01 00:00:00.000001+00",
        "1969-12-31 23:59:59.999999+00",
        "2262-06-30 12:34:56.789012+05:30",
    ]
    for version, text in enumerate(stored, start=1):
        await raw.execute(
            f'UPDATE "{pg_schema}".events SET recorded_at = $1::text::timestamptz '
            "WHERE stream_id = $2 AND version = $3",
            text,
            stream,
            version,
        )
    expected = [
        r[0]
        for r in await raw.fetch(
            f'SELECT recorded_at FROM "{pg_schema}".events WHERE stream_id = $1 ORDER BY version',
            stream,
        )
    ]
    by_stream = [r.recorded_at for r in await store.read_stream(stream)]
    by_position = [r.recorded_at for r in await store.read_all() if r.stream_id == stream]
    assert by_stream == by_position == expected
    assert all(t.utcoffset() == timedelta(0) for t in by_stream)


async def test_reads_in_a_row_share_a_connection_that_an_idle_store_hands_back(
    open_pg: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No background NOTIFY sender, which would take a pool connection too.
    store = await open_pg(max_connections=2, notify="in_transaction")
    stream = _stream()
    await store.append(stream, [Noted(text="a")])
    await asyncio.sleep(0)  # idle for a loop iteration: the spare went back
    assert store._connections._spare is None
    acquire = asyncpg.Pool.acquire
    acquired = 0

    def counted(pool: asyncpg.Pool, *args: Any, **kwargs: Any) -> Any:
        nonlocal acquired
        acquired += pool is store._pool
        return acquire(pool, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Pool, "acquire", counted)
    for _ in range(5):
        assert await store.load_snapshot(stream) is None
        assert len(await store.read_stream(stream)) == 1
    assert len(await store.read_all()) >= 1
    await store.append(stream, [Noted(text="b")])
    assert acquired == 1  # the later reads and the append skipped the pool
    await asyncio.sleep(0)
    assert store._connections._spare is None  # idle again: back in the pool
    await asyncio.gather(*store._connections._releases)  # the pool's release runs as a task
    assert store._pool.get_idle_size() == store._pool.get_size()
    assert [r.version for r in await store.read_stream(stream)] == [1, 2]
