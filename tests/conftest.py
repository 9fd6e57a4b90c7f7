"""Shared fixtures: real PostgreSQL and Redis servers, named by environment variables.

``CQRSKIT_TEST_POSTGRES_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/test``) and
``CQRSKIT_TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/15``). Tests that need a server
skip, saying which variable is missing, when it is not set; CI always sets both, and sets
``CQRSKIT_REQUIRE_SERVERS=1`` so that a missing server fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis


def _server_url(variable: str, server: str) -> str:
    url = os.environ.get(variable)
    if not url:
        reason = f"{variable} is not set: no {server} server to test against"
        if os.environ.get("CQRSKIT_REQUIRE_SERVERS"):
            pytest.fail(reason + " (CQRSKIT_REQUIRE_SERVERS forbids skipping)")
        pytest.skip(reason)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return _server_url("CQRSKIT_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _server_url("CQRSKIT_TEST_REDIS_URL", "Redis")


@pytest.fixture
async def pg_schema(postgres_url: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL schema name for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A fresh Redis key prefix for one test; every key under it is deleted afterwards.

    It has no glob metacharacters, so it matches itself in ``SCAN MATCH``.
    """
    prefix = f"cqrskit-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
