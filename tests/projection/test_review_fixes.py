"""Regression tests for reviewed bugs: racing parked-event retries, unknown parked ids."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from cqrskit.projection import FailurePolicy, ProjectionRunner, ProjectionState
from cqrskit.projection.testing import (
    MemoryHarness,
    ReadModelHarness,
    Ticked,
    eventually,
    harness_for,
    tick_registry,
)
from cqrskit.readstore import MemoryReadStore, SqlReadStore, SqlUnitOfWork
from cqrskit.readstore.base import (
    MAX_TABLE_NAME_BYTES,
    check_name,
    check_projection,
    physical_table,
)
from cqrskit.store import MemoryEventStore, RecordedEvent


class GatedEvents(MemoryEventStore):
    """An event store whose ``read_stream`` can hold callers at a barrier.

    ``retry_parked`` reads the parked event's stream after checking that it is parked and
    before its transaction: holding two retries there makes both pass that check first.
    """

    gate: asyncio.Barrier | None = None

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), 5)
        return await super().read_stream(stream_id, from_version)


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def harness(request: pytest.FixtureRequest) -> ReadModelHarness[Any]:
    """The contract harness on a memory, SQLite, PostgreSQL or Redis read store (closed
    after)."""
    if request.param == "memory":
        return MemoryHarness(MemoryReadStore())
    fixture = {
        "sqlite": "sqlite_read_store",
        "postgresql": "pg_read_store",
        "redis": "redis_read_store",
    }[request.param]
    return harness_for(request.getfixturevalue(fixture))


def _parked_gauge(runner: ProjectionRunner) -> float | None:
    return runner.metrics.registry.get_sample_value(
        "cqrskit_projection_parked_events", {"projection": "tally"}
    )


async def _runner_with_a_parked_event(
    harness: ReadModelHarness[Any], events: MemoryEventStore, poison: set[str]
) -> ProjectionRunner:
    await events.append("acc-1", [Ticked(), Ticked(label="bad"), Ticked()])
    runner = ProjectionRunner(
        events, batch_size=10, idle_wait=0.05, lease_retry=0.05, registry=CollectorRegistry()
    )
    policy = FailurePolicy(retries=0, backoff=0.001, then="park")
    runner.add(harness.tally(poison=poison, policy=policy), harness.store)
    return runner


async def _settled(runner: ProjectionRunner, events: MemoryEventStore) -> None:
    assert (await runner.wait_for("tally", await events.head(), timeout=10)).reached
    await eventually(lambda: runner.status("tally").state is ProjectionState.LIVE)


# -- BUG 1: two concurrent retries of one parked event -----------------------------------


async def test_concurrent_retries_of_one_parked_event_apply_it_once(
    harness: ReadModelHarness[Any],
) -> None:
    events = GatedEvents(tick_registry())
    poison = {"bad"}
    runner = await _runner_with_a_parked_event(harness, events, poison)
    async with runner:
        await _settled(runner, events)
        (parked,) = await runner.parked("tally")
        assert await harness.counts() == {"acc-1": 2}
        assert runner.status("tally").parked == 1
        poison.clear()
        events.gate = asyncio.Barrier(2)
        results = await asyncio.gather(
            runner.retry_parked("tally", parked.id),
            runner.retry_parked("tally", parked.id),
            return_exceptions=True,
        )
        events.gate = None
        assert results.count(None) == 1, results
        (error,) = [r for r in results if r is not None]
        assert isinstance(error, LookupError), results
        assert str(error) == f"no parked event {parked.id!r} for tally v1"
        assert await harness.counts() == {"acc-1": 3}
        assert await runner.parked("tally") == []
        assert runner.status("tally").parked == 0
        assert _parked_gauge(runner) == 0.0


async def test_unparking_an_event_no_longer_parked_rolls_the_transaction_back(
    harness: ReadModelHarness[Any],
) -> None:
    events = MemoryEventStore(tick_registry())
    runner = await _runner_with_a_parked_event(harness, events, {"bad"})
    async with runner:
        await _settled(runner, events)
        (parked,) = await runner.parked("tally")
    store, projection = harness.store, harness.tally()
    checkpoint = await store.checkpoint("tally", 1)
    assert checkpoint is not None
    later = (await events.append("acc-2", [Ticked()])).position
    async with store.transaction(projection, None) as tx:
        tx.unpark(parked.id)

    async def retry_again() -> None:
        async with store.transaction(projection, None) as tx:
            await projection.handle(await events.read_stream("acc-2"), tx.uow)
            tx.unpark(parked.id)
            tx.advance_to(later)

    with pytest.raises(LookupError, match="no parked event"):
        await retry_again()
    # Nothing of the failed transaction applied: no count, checkpoint unmoved.
    assert await harness.counts() == {"acc-1": 2}
    assert await store.checkpoint("tally", 1) == checkpoint
    assert await store.parked_events("tally", 1) == []


# -- BUG 7: discarding an id that is not parked --------------------------------------------


@pytest.mark.parametrize("parked_id", ["garbage", "999:999", ""])
async def test_discarding_an_unknown_or_malformed_id_raises_and_changes_nothing(
    harness: ReadModelHarness[Any], parked_id: str
) -> None:
    events = MemoryEventStore(tick_registry())
    runner = await _runner_with_a_parked_event(harness, events, {"bad"})
    async with runner:
        await _settled(runner, events)
        parked = await runner.parked("tally")
        assert len(parked) == 1
        with pytest.raises(LookupError) as raised:
            await runner.discard_parked("tally", parked_id)
        assert str(raised.value) == f"no parked event {parked_id!r} for tally v1"
        assert await runner.parked("tally") == parked
        assert runner.status("tally").parked == 1
        assert _parked_gauge(runner) == 1.0
        # The real one still goes, once.
        await runner.discard_parked("tally", parked[0].id)
        with pytest.raises(LookupError, match="no parked event"):
            await runner.discard_parked("tally", parked[0].id)
        assert await runner.parked("tally") == []
        assert runner.status("tally").parked == 0
        assert _parked_gauge(runner) == 0.0
    assert await harness.counts() == {"acc-1": 2}


async def test_unparking_a_malformed_id_in_a_transaction_raises_lookup_error(
    harness: ReadModelHarness[Any],
) -> None:
    projection = harness.tally()
    await harness.store.prepare(projection, projection.setup)

    async def unpark() -> None:
        async with harness.store.transaction(projection, None) as tx:
            tx.unpark("not-a-token")

    with pytest.raises(LookupError, match="no parked event 'not-a-token' for tally v1"):
        await unpark()


# -- BUG 2: physical table names that collide or get truncated -----------------------------


@dataclass
class Spec:
    name: str
    version: int
    tables: Sequence[str]


@pytest.mark.parametrize("name", ["order_summary", "shop", "a1", "v2_orders_2024"])
def test_plain_names_are_accepted(name: str) -> None:
    check_name("projection", name)
    check_name("table", name)


@pytest.mark.parametrize(
    "name", ["shop__order", "order__lines", "a___b", "shop_", "_lines", "_", "Orders", "1st", ""]
)
def test_names_that_could_collide_are_rejected(name: str) -> None:
    for kind in ("projection", "table"):
        with pytest.raises(ValueError, match=rf"{kind} name {name!r} must match .*no '__'"):
            check_name(kind, name)


def test_the_reviewed_collisions_are_rejected_before_they_happen() -> None:
    # Both pairs used to map to shop__order__lines_v1 (and a___b_v1).
    assert physical_table("shop", "order__lines", 1) == physical_table("shop__order", "lines", 1)
    assert physical_table("a_", "b", 1) == physical_table("a", "_b", 1)
    for spec in (
        Spec("shop", 1, ["order__lines"]),
        Spec("shop__order", 1, ["lines"]),
        Spec("a_", 1, ["b"]),
        Spec("a", 1, ["_b"]),
    ):
        with pytest.raises(ValueError, match="must match"):
            check_projection(spec)


def test_physical_names_over_63_bytes_are_rejected_with_the_limit_named() -> None:
    assert MAX_TABLE_NAME_BYTES == 63
    fits = Spec("p" * 52, 1, ["orders"])  # p...p__orders_v1: 52 + 2 + 6 + 3 = 63 bytes
    assert len(physical_table(fits.name, "orders", 1)) == 63
    check_projection(fits)
    with pytest.raises(ValueError, match="63-byte limit of PostgreSQL identifiers"):
        check_projection(Spec("p" * 52, 10, ["orders"]))  # the version's digits count too
    with pytest.raises(ValueError, match=r"table 'line_items' .* \(67 bytes\), over the 63-byte"):
        check_projection(Spec("p" * 52, 1, ["orders", "line_items"]))
    # The reviewer's case: v1 and v2 would both be truncated to the same 63 bytes.
    with pytest.raises(ValueError, match="63-byte limit"):
        check_projection(Spec("p" * 56, 1, ["orders"]))


@pytest.mark.parametrize("name", ["parked", "checkpoint"])
def test_names_the_read_stores_use_for_their_own_keys_are_reserved(name: str) -> None:
    with pytest.raises(ValueError, match=f"projection name '{name}' is reserved"):
        check_projection(Spec(name, 1, ["orders"]))
    check_name("table", name)  # a logical table may still be called so


async def test_every_read_store_refuses_a_reserved_projection_name(
    harness: ReadModelHarness[Any],
) -> None:
    # On Redis, projection "parked" v1 would keep its model under {prefix}parked:v1:, where
    # the parked events of a projection named "v1" live: dropping it would delete them.
    async def no_setup(uow: Any) -> None:
        raise AssertionError("setup must not run for a refused name")

    with pytest.raises(ValueError, match="reserved"):
        await harness.store.prepare(Spec("parked", 1, []), no_setup)
    with pytest.raises(ValueError, match="reserved"):
        await harness.store.drop_version("parked", 1)


async def _create_orders(uow: SqlUnitOfWork) -> None:
    await uow.execute("CREATE TABLE {orders} (id TEXT PRIMARY KEY)")


async def test_sqlite_prepare_rejects_colliding_names(sqlite_read_store: SqlReadStore) -> None:
    for spec in (Spec("shop", 1, ["order__lines"]), Spec("shop__order", 1, ["lines"])):
        with pytest.raises(ValueError, match="no '__'"):
            await sqlite_read_store.prepare(spec, _create_orders)
    assert await sqlite_read_store.checkpoint("shop", 1) is None
    assert await sqlite_read_store.checkpoint("shop__order", 1) is None


@pytest.mark.postgres
async def test_postgres_prepare_rejects_a_long_name_before_creating_anything(
    pg_read_store: SqlReadStore, postgres_url: str, pg_schema: str
) -> None:
    name = "p" * 56
    with pytest.raises(ValueError, match="63-byte limit of PostgreSQL identifiers"):
        await pg_read_store.prepare(Spec(name, 1, ["orders"]), _create_orders)
    assert await pg_read_store.checkpoint(name, 1) is None
    assert await pg_read_store.live_version(name) is None
    conn = await asyncpg.connect(postgres_url)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
            pg_schema,
        )
    finally:
        await conn.close()
    # Only the bookkeeping tables exist: no (truncated) projection table was created.
    assert {r["table_name"] for r in tables} == {
        "cqrskit_projections",
        "cqrskit_checkpoints",
        "cqrskit_projection_tables",
        "cqrskit_parked_events",
        "cqrskit_control",
    }
