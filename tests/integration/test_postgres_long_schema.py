"""A PostgreSQL event store in a schema with a long name still notifies its readers.

PostgreSQL refuses NOTIFY channel names over 63 bytes; ``cqrskit_events.<schema>`` was
that long for schema names over 48 characters, and every append's NOTIFY failed (readers
then waited for their fallback wake-up).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from cqrskit import open_event_store
from cqrskit.store._pg_schema import PgTarget
from cqrskit.testing import Noted, contract_registry

pytestmark = pytest.mark.postgres


def test_channel_names_fit_postgres_and_stay_per_schema() -> None:
    long_a, long_b = PgTarget("x", "a" * 63), PgTarget("x", "b" * 63)
    assert len(long_a.channel.encode()) <= 63
    assert long_a.channel != long_b.channel
    assert PgTarget("x", "orders").channel == "cqrskit_events.orders"


async def test_appends_in_a_long_named_schema_notify(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    schema = "long_" + "s" * 55
    store = await open_event_store(f"{postgres_url}?schema={schema}", contract_registry())
    try:
        with caplog.at_level(logging.WARNING):
            waiter = asyncio.create_task(store.wait_for_events(await store.head(), 10))
            await asyncio.sleep(0.3)
            await store.append("long-1", [Noted(text="a")])
            assert await asyncio.wait_for(waiter, 10)
        assert "NOTIFY" not in caplog.text
    finally:
        await store.close()
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
