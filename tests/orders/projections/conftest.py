"""Fixtures for the orders read models: read stores of every kind, an event store, a shop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from orders_projection_support import Shop, Stores
from redis.asyncio import Redis

from cqrskit.readstore import ReadStore, RedisReadStore, open_sql_read_store
from cqrskit.store import EventRegistry
from cqrskit.store.memory import MemoryEventStore
from orders.domain.events import ALL_EVENTS


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def kind(request: pytest.FixtureRequest) -> str:
    """Every read-store kind (tests that only take SQL stores override it)."""
    return str(request.param)


@pytest.fixture
async def stores(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Stores]:
    """Fresh read stores of ``kind``."""
    if kind == "sqlite":

        async def sqlite(name: str) -> ReadStore[Any]:
            return await open_sql_read_store(f"sqlite:///{tmp_path}/{name}.db")

        result = Stores("sqlite", sqlite)
        yield result
        await result.close()
        return
    if kind == "postgres":
        url: str = request.getfixturevalue("postgres_url")

        async def pg(name: str) -> ReadStore[Any]:
            return await open_sql_read_store(f"{url}?schema={name}")

        result = Stores("postgres", pg)
        yield result
        await result.close()
        conn = await asyncpg.connect(url)
        try:
            for name in result.names:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()
        return
    redis_url: str = request.getfixturevalue("redis_url")

    async def redis(name: str) -> ReadStore[Any]:
        return RedisReadStore.from_url(redis_url, prefix=f"cqrskit-test:{name}:")

    result = Stores("redis", redis)
    yield result
    await result.close()
    client = Redis.from_url(redis_url)
    try:
        for name in result.names:
            keys = [k async for k in client.scan_iter(match=f"cqrskit-test:{name}:*")]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def events() -> MemoryEventStore:
    return MemoryEventStore(EventRegistry(ALL_EVENTS))


@pytest.fixture
def shop(events: MemoryEventStore) -> Shop:
    return Shop(events)
