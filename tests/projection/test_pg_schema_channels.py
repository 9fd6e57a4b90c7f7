"""PostgreSQL read stores in different schemas of one database do not hear each other.

NOTIFY is database-wide, and a waiter takes the checkpoint a notification carries as its
projection's own: with one channel for every schema, a commit of a projection of the same
name in another schema (another service, another test) ended a read-your-writes wait
before the read model had the write.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from cqrskit.readstore import SqlReadStore, open_sql_read_store
from cqrskit.readstore._postgres import checkpoint_channel
from cqrskit.store.base import Position

pytestmark = pytest.mark.postgres


@dataclass
class Spec:
    name: str = "shared_name"
    version: int = 1
    tables: tuple[str, ...] = field(default_factory=tuple)


async def _no_setup(uow: Any) -> None:
    pass


@pytest.fixture
async def other_schema(postgres_url: str) -> AsyncIterator[str]:
    name = f"o_{uuid.uuid4().hex[:16]}"
    yield name
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


async def test_a_commit_in_another_schema_does_not_end_a_wait(
    postgres_url: str, pg_schema: str, other_schema: str
) -> None:
    mine: SqlReadStore = await open_sql_read_store(f"{postgres_url}?schema={pg_schema}")
    theirs: SqlReadStore = await open_sql_read_store(f"{postgres_url}?schema={other_schema}")
    spec = Spec()
    try:
        await mine.prepare(spec, _no_setup)
        await theirs.prepare(spec, _no_setup)
        wait = asyncio.create_task(mine.wait_for_checkpoint(spec.name, Position(0, 50), 10))
        await asyncio.sleep(0.3)  # the waiter is listening
        async with theirs.transaction(spec, None) as tx:
            tx.advance_to(Position(0, 100))
        await asyncio.sleep(0.5)
        assert not wait.done(), "another schema's checkpoint ended the wait"
        async with mine.transaction(spec, None) as tx:
            tx.advance_to(Position(0, 50))
        assert await asyncio.wait_for(wait, 10) == Position(0, 50)
    finally:
        await mine.close()
        await theirs.close()


def test_channels_are_per_schema_and_fit_postgres_names() -> None:
    assert checkpoint_channel("a") != checkpoint_channel("b")
    long = "s" * 63
    assert len(checkpoint_channel(long).encode()) <= 63
    assert checkpoint_channel(long) != checkpoint_channel("t" * 63)
