"""A checkpoint waiter reads its projection's checkpoint when that projection commits, not
when another projection of the same read store does: commits (in-process, and through
PostgreSQL NOTIFY and Redis pub/sub) tell which projection moved. Fewer reads per wait,
and a waiter's wake-up no longer queues behind reads for commits it does not care about."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from cqrskit.readstore import (
    MemoryReadStore,
    RedisReadStore,
    open_sql_read_store,
)
from cqrskit.store.base import Position


@dataclass
class Spec:
    name: str
    version: int = 1
    tables: tuple[str, ...] = field(default_factory=tuple)


async def _no_setup(uow: Any) -> None:
    pass


async def _commit(store: Any, spec: Spec, seq: int) -> None:
    async with store.transaction(spec, None) as tx:
        tx.advance_to(Position(0, seq))


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    """The store a waiter reads, and the store a runner commits through (the same object
    in-process; a second handle, as another process would have, for PostgreSQL and Redis)."""
    if request.param == "memory":
        store = MemoryReadStore()
        yield store, store
    elif request.param == "sqlite":
        opened = await open_sql_read_store(f"sqlite:///{tmp_path}/read.db")
        yield opened, opened
        await opened.close()
    elif request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        schema = f"t_{uuid.uuid4().hex[:16]}"
        a = await open_sql_read_store(f"{url}?schema={schema}")
        b = await open_sql_read_store(f"{url}?schema={schema}")
        try:
            yield a, b
        finally:
            await a.close()
            await b.close()
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
    else:
        url = request.getfixturevalue("redis_url")
        prefix = f"cqrskit-test:{uuid.uuid4().hex[:12]}:"
        a = RedisReadStore.from_url(url, prefix)
        b = RedisReadStore.from_url(url, prefix)
        try:
            yield a, b
        finally:
            await a.close()
            await b.close()
            client = Redis.from_url(url)
            try:
                keys = [k async for k in client.scan_iter(match=prefix + "*")]
                if keys:
                    await client.delete(*keys)
            finally:
                await client.aclose()


async def test_a_waiter_reads_only_when_its_own_projection_commits(
    stores: tuple[Any, Any],
) -> None:
    waiter, runner = stores
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
    wait = asyncio.create_task(waiter.wait_for_checkpoint("mine", Position(0, 5), 10.0))
    await asyncio.sleep(0.2)  # the waiter has read once and waits (and listens)
    before = len(reads)
    for seq in range(1, 11):
        await _commit(runner, other, seq)
    await asyncio.sleep(0.3)  # time for other processes' notifications to arrive

    assert not wait.done()
    # Ten commits of another projection: no read. Across processes a listener's own
    # wake-ups (its (re)connect, a heartbeat) may still each cost one read.
    slack = 0 if waiter is runner else 2
    assert len(reads) - before <= slack, reads

    await _commit(runner, mine, 5)
    assert await asyncio.wait_for(wait, 5) == Position(0, 5)
