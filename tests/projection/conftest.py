"""Fixtures for the projection tests: read stores on the real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cqrskit.readstore import (
    RedisReadStore,
    SqlReadStore,
    open_redis_read_store,
    open_sql_read_store,
)


@pytest.fixture
async def sqlite_read_store(tmp_path: object) -> AsyncIterator[SqlReadStore]:
    store: SqlReadStore = await open_sql_read_store(f"sqlite:///{tmp_path}/read.db")
    yield store
    await store.close()


@pytest.fixture
async def pg_read_store(postgres_url: str, pg_schema: str) -> AsyncIterator[SqlReadStore]:
    store: SqlReadStore = await open_sql_read_store(f"{postgres_url}?schema={pg_schema}")
    yield store
    await store.close()


@pytest.fixture
async def redis_read_store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisReadStore]:
    store: RedisReadStore = await open_redis_read_store(f"{redis_url}?prefix={redis_prefix}")
    yield store
    await store.close()
