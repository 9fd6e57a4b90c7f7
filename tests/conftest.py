"""Shared fixtures: real PostgreSQL and Redis servers, named by environment variables.

``CQRSKIT_TEST_POSTGRES_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/test``) and
``CQRSKIT_TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/15``). Tests that need a server
skip, saying which variable is missing, when it is not set; CI always sets both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("CQRSKIT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CQRSKIT_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("CQRSKIT_TEST_REDIS_URL")
    if not url:
        pytest.skip("CQRSKIT_TEST_REDIS_URL is not set: no Redis server to test against")
    return url


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
