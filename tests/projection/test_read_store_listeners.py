"""Read stores' wake-ups: they survive a lost connection and name the projection that
committed, so a waiter reads only for its own; Redis key and parked guards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from cqrskit.messages import DomainEvent
from cqrskit.readstore import MemoryReadStore, RedisReadStore, SqlReadStore, open_sql_read_store
from cqrskit.readstore.redis import glob_escape
from cqrskit.store.base import START, Position, RecordedEvent


class Paid(DomainEvent):
    amount: int


TIMEOUT = 10.0
FAST = 2.0


@dataclass
class Spec:
    name: str = "lst"
    version: int = 1
    tables: tuple[str, ...] = field(default_factory=tuple)


async def _no_setup(uow: Any) -> None:
    pass


async def _commit(store: Any, spec: Spec, seq: int) -> None:
    async with store.transaction(spec, None) as tx:
        tx.advance_to(Position(0, seq))


async def _woken_after_commit(waiter: Any, committer: Any, spec: Spec, seq: int) -> float:
    """Seconds from ``committer``'s commit of ``seq`` to ``waiter`` seeing it."""
    wait = asyncio.create_task(waiter.wait_for_checkpoint(spec.name, Position(0, seq), TIMEOUT))
    await asyncio.sleep(0.3)
    assert not wait.done()
    started = time.perf_counter()
    await _commit(committer, spec, seq)
    reached = await wait
    elapsed = time.perf_counter() - started
    assert reached == Position(0, seq)
    return elapsed


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
async def pg_pair(postgres_url: str, pg_schema: str) -> AsyncIterator[tuple[Any, Any]]:
    url = f"{postgres_url}?schema={pg_schema}"
    a: SqlReadStore = await open_sql_read_store(url)
    b: SqlReadStore = await open_sql_read_store(url)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def _pg_listener(store: SqlReadStore) -> Any:
    return store._driver.listener  # type: ignore[attr-defined]


@pytest.mark.postgres
async def test_postgres_wakeup_survives_listener_loss(
    pg_pair: tuple[SqlReadStore, SqlReadStore], postgres_url: str
) -> None:
    a, b = pg_pair
    spec = Spec()
    await b.prepare(spec, _no_setup)
    healthy = await _woken_after_commit(a, b, spec, 1)
    print(f"postgres healthy wake-up: {healthy:.3f}s")
    assert healthy < FAST

    listener = _pg_listener(a)
    await _until(lambda: listener.server_pid is not None)
    pid = listener.server_pid
    admin = await asyncpg.connect(postgres_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()

    after_kill = await _woken_after_commit(a, b, spec, 2)
    print(f"postgres wake-up after the LISTEN connection was killed: {after_kill:.3f}s")
    assert after_kill < FAST
    await _until(lambda: listener.server_pid not in (None, pid))
    again = await _woken_after_commit(a, b, spec, 3)
    print(f"postgres wake-up after reconnecting: {again:.3f}s")
    assert again < FAST


@pytest.mark.postgres
async def test_postgres_close_after_listener_loss_raises_nothing(
    postgres_url: str, pg_schema: str
) -> None:
    a: SqlReadStore = await open_sql_read_store(f"{postgres_url}?schema={pg_schema}")
    await a.wait_for_checkpoint("lst", Position(0, 1), 0.01)
    listener = _pg_listener(a)
    await _until(lambda: listener.server_pid is not None)
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", listener.server_pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.1)
    await a.close()


@pytest.mark.postgres
async def test_postgres_waiters_take_the_checkpoint_from_the_notification(
    pg_pair: tuple[SqlReadStore, SqlReadStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pg_pair
    live, rebuilt = Spec(), Spec(version=2)
    await b.prepare(live, _no_setup)
    await b.prepare(rebuilt, _no_setup)
    reads: list[Position | None] = []
    read = a.live_checkpoint

    async def counted(projection: str) -> Position | None:
        reads.append(await read(projection))
        return reads[-1]

    monkeypatch.setattr(a, "live_checkpoint", counted)
    wait = asyncio.create_task(a.wait_for_checkpoint(live.name, Position(0, 5), TIMEOUT))
    await _until(lambda: len(reads) >= 1)
    await _until(lambda: _pg_listener(a).connected.is_set())
    await asyncio.sleep(0.1)  # the listener's connect wake-up makes one more read
    before = len(reads)
    # A version readers do not use yet says nothing about the live one.
    await _commit(b, rebuilt, 9)
    await _commit(b, live, 3)
    await asyncio.sleep(0.2)
    assert not wait.done()
    await _commit(b, live, 5)
    assert await wait == Position(0, 5)
    # Neither the commits below the target nor the one that reached it needed a read.
    assert len(reads) == before


@pytest.mark.postgres
async def test_postgres_switch_waits_for_a_batch_that_announces_the_live_version(
    pg_pair: tuple[SqlReadStore, SqlReadStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch of the live version tells waiters "live" in its NOTIFY; a switch to another
    # version committing between that statement and the batch's commit would make the
    # news stale. The switch must wait for the batch instead.
    from cqrskit.readstore import _postgres

    a, b = pg_pair
    live, rebuilt = Spec(), Spec(version=2)
    await a.prepare(live, _no_setup)
    await a.prepare(rebuilt, _no_setup)
    statements_ran, release = asyncio.Event(), asyncio.Event()
    commit = _postgres._PgTransaction.commit

    async def held_commit(self: Any, statements: list[Any]) -> None:
        if any("WITH moved" in st.sql for st in statements) and not release.is_set():
            await self.run(statements)
            statements_ran.set()
            await release.wait()
            statements = []
        await commit(self, statements)

    monkeypatch.setattr(_postgres._PgTransaction, "commit", held_commit)
    batch = asyncio.create_task(_commit(a, live, 100))
    await asyncio.wait_for(statements_ran.wait(), TIMEOUT)

    async def switch() -> None:
        async with b.transaction(rebuilt, None) as tx:
            tx.advance_to(Position(0, 100))
            tx.go_live()

    switching = asyncio.create_task(switch())
    try:
        await asyncio.sleep(0.5)
        assert not switching.done(), "the switch committed while a live batch was in flight"
    finally:
        release.set()
        await batch
        await asyncio.wait_for(switching, TIMEOUT)
    assert await b.live_version(live.name) == 2


def test_checkpoint_news_reads_only_live_checkpoint_payloads() -> None:
    from cqrskit.readstore._postgres import checkpoint_news
    from cqrskit.readstore.base import CHANGED

    assert checkpoint_news("orders 2 17:40 live") == {"orders": Position(17, 40)}
    assert checkpoint_news("orders 2 17:40 other") == {"orders": None}
    assert checkpoint_news("orders 2 17:40") == {}  # no live version row
    # A switch or a parked event: the waiters of orders look it up, others need not.
    assert checkpoint_news("orders") == {"orders": CHANGED}
    assert checkpoint_news("orders 2 x:y live") == {}
    assert checkpoint_news(None) == {}
    assert checkpoint_news("") == {}


# -- Redis ----------------------------------------------------------------------------------


@pytest.fixture
async def redis_admin(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_pair(redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[Any, Any]]:
    a = RedisReadStore.from_url(redis_url, redis_prefix)
    b = RedisReadStore.from_url(redis_url, redis_prefix)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _kill_pubsub(admin: Redis) -> int:
    killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    return int(killed)


@pytest.mark.redis
async def test_redis_wakeup_survives_pubsub_loss(
    redis_pair: tuple[RedisReadStore, RedisReadStore], redis_admin: Redis
) -> None:
    a, b = redis_pair
    spec = Spec()
    await b.prepare(spec, _no_setup)
    healthy = await _woken_after_commit(a, b, spec, 1)
    print(f"redis healthy wake-up: {healthy:.3f}s")
    assert healthy < FAST

    assert await _kill_pubsub(redis_admin) >= 1
    after_kill = await _woken_after_commit(a, b, spec, 2)
    print(f"redis wake-up after the pub/sub connection was killed: {after_kill:.3f}s")
    assert after_kill < FAST
    await _until(a.listening.is_set)
    again = await _woken_after_commit(a, b, spec, 3)
    print(f"redis wake-up after resubscribing: {again:.3f}s")
    assert again < FAST


@pytest.mark.redis
async def test_redis_close_after_pubsub_loss_raises_nothing(
    redis_url: str, redis_prefix: str, redis_admin: Redis
) -> None:
    a = RedisReadStore.from_url(redis_url, redis_prefix)
    await a.wait_for_checkpoint("lst", Position(0, 1), 0.01)
    await _until(a.listening.is_set)
    assert await _kill_pubsub(redis_admin) >= 1
    await asyncio.sleep(0.1)
    await a.close()


@pytest.mark.redis
async def test_redis_drop_version_only_deletes_its_own_keys(
    redis_url: str, redis_prefix: str, redis_admin: Redis
) -> None:
    # "x[1]:" read as a glob matches "x1:": the other store's keys must survive.
    mine = RedisReadStore.from_url(redis_url, redis_prefix + "x[1]:")
    other = RedisReadStore.from_url(redis_url, redis_prefix + "x1:")
    try:
        for store in (mine, other):
            for version in (1, 2):
                await store.prepare(Spec("orders", version), _no_setup)
                await _park(store, Spec("orders", version), version)
            async with store.transaction(Spec("orders", 1), None) as tx:
                tx.uow.pipe.set(tx.uow.key("row", "o1"), "data")
                tx.advance_to(Position(0, 1))
            async with store.transaction(Spec("orders", 2), None) as tx:
                tx.go_live()
        await mine.drop_version("orders", 1)
        assert await redis_admin.get(mine.version_prefix("orders", 1) + "row:o1") is None
        assert await mine.checkpoint("orders", 1) is None
        assert await redis_admin.get(other.version_prefix("orders", 1) + "row:o1") == b"data"
        assert await other.checkpoint("orders", 1) == Position(0, 1)
        assert [p.id for p in await other.parked_events("orders", 1)] == ["1:1"]
        # Of the dropped version nothing is left: no model key, checkpoint or parked event.
        pattern = glob_escape(mine.prefix) + "*"
        left = {k.decode() async for k in redis_admin.scan_iter(match=pattern)}
        assert {k.removeprefix(mine.prefix) for k in left} == {
            "live",
            "checkpoint:orders:v2",
            "parked:orders:v2",
            "parked:orders:v2:1:2",
        }
    finally:
        await mine.close()
        await other.close()


@pytest.mark.redis
@pytest.mark.parametrize("name", ["a__b", "Orders", "a:b", "x*", "_a"])
async def test_redis_refuses_projection_names_that_could_collide(
    redis_read_store: RedisReadStore, name: str
) -> None:
    with pytest.raises(ValueError, match="projection name"):
        await redis_read_store.prepare(Spec(name), _no_setup)
    with pytest.raises(ValueError, match="projection name"):
        async with redis_read_store.transaction(Spec(name), None):
            pass
    with pytest.raises(ValueError, match="projection name"):
        await redis_read_store.drop_version(name, 1)


# -- Redis: unparking is a commit guard ---------------------------------------------------


@pytest.fixture
async def totals(redis_read_store: RedisReadStore) -> tuple[RedisReadStore, Spec, str]:
    """The Redis store with a projection ``totals`` prepared, and the key of its sums."""
    spec = Spec("totals")
    await redis_read_store.prepare(spec, _no_setup)
    return redis_read_store, spec, redis_read_store.version_prefix("totals", 1) + "totals"


async def _park(store: RedisReadStore, spec: Spec, seq: int, both_in: Any = None) -> str:
    event = RecordedEvent("acc-1", seq, Position(1, seq), Paid(amount=1), datetime.now(UTC))
    async with store.transaction(spec, None) as tx:
        tx.park(event, "boom", 1)
        if both_in is not None:
            await both_in.wait()
    return str(event.position)


async def _retry(store: RedisReadStore, spec: Spec, parked_id: str, both_in: Any) -> None:
    async with store.transaction(spec, None) as tx:
        tx.uow.pipe.hincrby(tx.uow.key("totals"), "sum", 1)
        tx.unpark(parked_id)
        await both_in.wait()  # both transactions are open before either commits


@pytest.mark.redis
async def test_redis_concurrent_unparks_of_one_event_commit_once(
    totals: tuple[RedisReadStore, Spec, str],
) -> None:
    store, spec, total = totals
    for round_ in range(1, 6):
        parked_id = await _park(store, spec, round_)
        both_in = asyncio.Barrier(2)
        results = await asyncio.gather(
            _retry(store, spec, parked_id, both_in),
            _retry(store, spec, parked_id, both_in),
            return_exceptions=True,
        )
        failures = [r for r in results if r is not None]
        assert len(failures) == 1, results
        assert isinstance(failures[0], LookupError)
        assert str(failures[0]) == f"no parked event {parked_id!r} for totals v1"
        assert int(await store.client.hget(total, "sum")) == round_  # applied exactly once
        assert await store.parked_events("totals") == []


@pytest.mark.redis
async def test_redis_parking_another_event_meanwhile_does_not_fail_an_unpark(
    totals: tuple[RedisReadStore, Spec, str],
) -> None:
    store, spec, total = totals
    others: list[str] = []
    for round_ in range(1, 6):
        parked_id = await _park(store, spec, 2 * round_)
        both_in = asyncio.Barrier(2)
        # The park waits at the barrier first, so the retry (the last to arrive) goes on
        # first: the park commits between the retry's WATCH and its EXEC.
        results = await asyncio.gather(
            _park(store, spec, 2 * round_ + 1, both_in),
            _retry(store, spec, parked_id, both_in),
            return_exceptions=True,
        )
        assert not [r for r in results if isinstance(r, BaseException)], results
        others.append(str(results[0]))
        assert int(await store.client.hget(total, "sum")) == round_
        assert [p.id for p in await store.parked_events("totals")] == others


@pytest.mark.redis
async def test_redis_unpark_of_an_unknown_id_applies_nothing(
    totals: tuple[RedisReadStore, Spec, str],
) -> None:
    store, spec, total = totals
    parked_id = await _park(store, spec, 1)

    async def unpark(expected: Position | None, *ids: str) -> None:
        async with store.transaction(spec, expected) as tx:
            tx.uow.pipe.hincrby(total, "sum", 1)
            tx.advance_to(Position(5, 0))
            for parked_id in ids:
                tx.unpark(parked_id)

    for bad in ("9:9", "not-an-id"):
        with pytest.raises(LookupError) as raised:
            await unpark(START, parked_id, bad)
        assert str(raised.value) == f"no parked event {bad!r} for totals v1"
    with pytest.raises(LookupError, match="no parked event"):
        await unpark(None, parked_id, parked_id)  # the second unpark finds nothing
    assert await store.client.hget(total, "sum") is None
    assert await store.checkpoint("totals", 1) == START
    assert [p.id for p in await store.parked_events("totals")] == [parked_id]


# -- Every store: a waiter reads only when its own projection commits ----------------------


async def _reads_only_for_own_projection(waiter: Any, runner: Any, slack: int) -> None:
    """Ten commits of another projection of the store make ``waiter``'s wait for ``mine``
    read its checkpoint at most ``slack`` times (commits name their projection); a commit
    of ``mine`` ends the wait. ``runner`` commits (the same store in-process, a second
    handle as another process would have)."""
    mine, other = Spec("mine"), Spec("other")
    for spec in (mine, other):
        await runner.prepare(spec, _no_setup)
    reads: list[str] = []
    live_checkpoint = waiter.live_checkpoint

    async def counted(projection: str) -> Position | None:
        reads.append(projection)
        result: Position | None = await live_checkpoint(projection)
        return result

    waiter.live_checkpoint = counted
    wait = asyncio.create_task(waiter.wait_for_checkpoint("mine", Position(0, 5), TIMEOUT))
    await asyncio.sleep(0.2)  # the waiter has read once and waits (and listens)
    before = len(reads)
    for seq in range(1, 11):
        await _commit(runner, other, seq)
    await asyncio.sleep(0.3)  # time for another process's notifications to arrive
    assert not wait.done()
    assert len(reads) - before <= slack, reads
    await _commit(runner, mine, 5)
    assert await asyncio.wait_for(wait, FAST) == Position(0, 5)


async def test_memory_waiter_reads_only_when_its_projection_commits() -> None:
    store = MemoryReadStore()
    await _reads_only_for_own_projection(store, store, slack=0)


async def test_sqlite_waiter_reads_only_when_its_projection_commits(tmp_path: Path) -> None:
    store = await open_sql_read_store(f"sqlite:///{tmp_path}/read.db")
    try:
        await _reads_only_for_own_projection(store, store, slack=0)
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_waiter_reads_only_when_its_projection_commits(
    pg_pair: tuple[SqlReadStore, SqlReadStore],
) -> None:
    # Across processes a listener's own wake-ups ((re)connect, heartbeat) may each read.
    await _reads_only_for_own_projection(*pg_pair, slack=2)


@pytest.mark.redis
async def test_redis_waiter_reads_only_when_its_projection_commits(
    redis_pair: tuple[RedisReadStore, RedisReadStore],
) -> None:
    await _reads_only_for_own_projection(*redis_pair, slack=2)
