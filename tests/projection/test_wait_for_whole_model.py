"""``ProjectionRunner.wait_for`` on PostgreSQL returns only once the read model holds the
events up to the position: not on a checkpoint of another schema's projection of the same
name, and not on the checkpoint of a version being rebuilt beside the live one.

bench/bench_search.py saw ``wait_for("order_search", <last append>)`` return with part of
the model built while other services and tests committed ``order_search`` checkpoints in
other schemas of the same database: with one NOTIFY channel for every schema, a waiter
took their checkpoints as its own (fixed by one channel per schema). These tests go
through the runner, as the benchmark did; the read-store tests in
test_pg_schema_channels.py and test_read_store_listeners.py pin the mechanism.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from cqrskit.consistency import wait_for
from cqrskit.projection import ProjectionRunner
from cqrskit.projection.testing import SqlHarness, Ticked, tick_registry
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork, open_sql_read_store
from cqrskit.readstore.base import ProjectionSpec, ReadTransaction
from cqrskit.store import EventStore, StreamAppend, open_event_store
from cqrskit.store.base import Position

pytestmark = pytest.mark.postgres

STREAMS = [f"s-{i}" for i in range(20)]
BATCH = 20


@pytest.fixture
async def schemas(postgres_url: str) -> AsyncIterator[list[str]]:
    """Schemas for an event store and another service's read store, dropped afterwards."""
    names = [f"w_{uuid.uuid4().hex[:16]}" for _ in range(2)]
    yield names
    conn = await asyncpg.connect(postgres_url)
    try:
        for name in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def events(postgres_url: str, schemas: list[str]) -> AsyncIterator[EventStore]:
    store = await open_event_store(f"{postgres_url}?schema={schemas[0]}", tick_registry())
    yield store
    await store.close()


async def append_rounds(events: EventStore, rounds: int) -> Position:
    """``rounds`` transactions of ten ticks on each of the 20 streams (the benchmark's
    bulk appends, smaller); the position of the last one, as a command would answer."""
    position = None
    for _ in range(rounds):
        result = await events.append_many(
            [StreamAppend(s, [Ticked() for _ in range(10)]) for s in STREAMS]
        )
        position = result.position
    assert position is not None
    return position


async def test_wait_for_is_not_ended_by_another_schemas_projection_of_the_same_name(
    postgres_url: str, pg_schema: str, schemas: list[str], events: EventStore
) -> None:
    last = await append_rounds(events, 10)  # 2,000 events: 100 batches
    mine: SqlReadStore = await open_sql_read_store(f"{postgres_url}?schema={pg_schema}")
    theirs: SqlReadStore = await open_sql_read_store(f"{postgres_url}?schema={schemas[1]}")
    harness, their_tally = SqlHarness(mine), SqlHarness(theirs).tally()
    my_tally = harness.tally()
    await mine.prepare(my_tally, my_tally.setup)  # the model exists before the wait, empty
    await theirs.prepare(their_tally, their_tally.setup)
    stop = asyncio.Event()

    async def another_service() -> None:
        # Its checkpoints are transaction ids taken after our appends: all past ``last``.
        conn = await asyncpg.connect(postgres_url)
        try:
            n = 0
            while not stop.is_set():
                n += 1
                xid = int(await conn.fetchval("SELECT pg_current_xact_id()::text::bigint"))
                async with theirs.transaction(their_tally, None) as tx:
                    tx.advance_to(Position(xid, n))
                await asyncio.sleep(0.01)
        finally:
            await conn.close()

    noise = asyncio.create_task(another_service())
    runner = ProjectionRunner(events, registry=CollectorRegistry(), batch_size=BATCH)
    runner.add(my_tally, mine)
    try:
        async with runner:
            result = await runner.wait_for("tally", last, timeout=60)
            counts = await harness.counts()
    finally:
        stop.set()
        await noise
        await mine.close()
        await theirs.close()
    assert result.reached, result
    assert result.checkpoint == last, "the wait ended on a checkpoint that is not ours"
    assert counts == dict.fromkeys(STREAMS, 100)


async def test_wait_for_during_a_rebuild_ends_with_the_switch(
    postgres_url: str, pg_schema: str, events: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: SqlReadStore = await open_sql_read_store(f"{postgres_url}?schema={pg_schema}")
    # The waiter is an API process: its own handle, woken by NOTIFY alone.
    api: SqlReadStore = await open_sql_read_store(f"{postgres_url}?schema={pg_schema}")
    harness = SqlHarness(store)
    try:
        first = ProjectionRunner(events, registry=CollectorRegistry(), batch_size=BATCH)
        first.add(harness.tally(version=1), store)
        async with first:
            assert (await first.wait_for("tally", await append_rounds(events, 5), 60)).reached
        # Written after v1 stopped: v1 (live, and kept as it is without ``previous``)
        # never gets there. v2 passes the token well before the switch: the switch waits
        # until v2 is near the head, 200 events further, and then takes a second more.
        token = await append_rounds(events, 1)
        await append_rounds(events, 1)
        real = store.transaction

        @asynccontextmanager
        async def slow_switch(
            projection: ProjectionSpec, expected: Position | None
        ) -> AsyncIterator[ReadTransaction[SqlUnitOfWork]]:
            async with real(projection, expected) as tx:
                yield tx
                if tx.switch_live:  # v2 is past the token and not yet what readers use
                    await asyncio.sleep(1.0)

        monkeypatch.setattr(store, "transaction", slow_switch)
        runner = ProjectionRunner(events, registry=CollectorRegistry(), batch_size=BATCH)
        runner.add(harness.tally(version=2), store)
        async with runner:
            result = await wait_for(api, "tally", token, timeout=60)
            live = await api.live_version("tally")
            counts = await SqlHarness(api).counts()
    finally:
        await api.close()
        await store.close()
    assert result.reached, result
    assert live == 2, "the wait ended on the rebuilt version before readers used it"
    assert all(counts[s] >= 60 for s in STREAMS), counts
