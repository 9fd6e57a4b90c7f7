"""Test setup of the library example: its package on the path, and the repository's
server fixtures (``postgres_url``, ``redis_url``, ``pg_schema``, ``redis_prefix``).

The example lives outside ``tests/``, so pytest does not hand it the fixtures of
``tests/conftest.py``; they are loaded from that file and re-exported here instead of
being copied (one definition of how tests reach the servers, and of the
CQRSKIT_REQUIRE_SERVERS rule).
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

HERE = Path(__file__).resolve().parent
# `import library` must find examples/library/library whatever directory pytest runs from.
sys.path.insert(0, str(HERE))


def _load_shared_fixtures() -> object:
    path = HERE.parent.parent / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("cqrskit_shared_fixtures", path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_shared = _load_shared_fixtures()
pg_schema = _shared.pg_schema  # type: ignore[attr-defined]
postgres_url = _shared.postgres_url  # type: ignore[attr-defined]
redis_prefix = _shared.redis_prefix  # type: ignore[attr-defined]
redis_url = _shared.redis_url  # type: ignore[attr-defined]


@pytest.fixture
async def pg_read_schema(postgres_url: str) -> AsyncIterator[str]:
    """A second fresh PostgreSQL schema for one test (read models beside ``pg_schema``'s
    events, or a second read store), dropped afterwards."""
    name = f"r_{uuid.uuid4().hex[:16]}"
    yield name
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()
