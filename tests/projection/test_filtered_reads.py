"""A projection reads only the event types it handles: the others are never decoded, yet
its checkpoint moves past them, promptly, and without a busy loop; verify decides alike."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from cqrskit.messages import DomainEvent
from cqrskit.projection import ProjectionRunner
from cqrskit.projection.testing import Ignored, SqlHarness, Ticked, append_ticks
from cqrskit.projection.verify import verify_projection
from cqrskit.readstore import SqlReadStore
from cqrskit.store import EventRegistry, EventStore, MemoryEventStore, Position
from cqrskit.store.sqlite import SqliteEventStore


class CountingRegistry(EventRegistry):
    """Counts the events it decodes, by stored type."""

    def __init__(self) -> None:
        super().__init__([Ticked, Ignored])
        self.decoded: Counter[str] = Counter()

    def current_validator(self, event_type: str) -> tuple[int, Callable[[str], DomainEvent]]:
        # Pages decode through the validator this hands out (looked up once a page), not
        # through decode(): count its calls.
        version, validate = super().current_validator(event_type)

        def counting(text: str) -> DomainEvent:
            self.decoded[event_type] += 1
            return validate(text)

        return version, counting


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def events(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    registry = CountingRegistry()
    if request.param == "memory":
        yield MemoryEventStore(registry)
        return
    if request.param == "sqlite":
        store: EventStore = await SqliteEventStore.open(tmp_path / "events.db", registry)
        yield store
        await store.close()
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    from cqrskit.store.postgres import PostgresEventStore

    store = await PostgresEventStore.open(f"{url}?schema={schema}", registry)
    yield store
    await store.close()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def harness(sqlite_read_store: SqlReadStore) -> SqlHarness:
    return SqlHarness(sqlite_read_store)


def _runner(events: EventStore, **options: Any) -> ProjectionRunner:
    options.setdefault("batch_size", 7)
    options.setdefault("idle_wait", 30.0)  # a wake-up is never the idle timeout running out
    return ProjectionRunner(
        events, drop_delay=0.05, lease_retry=0.05, registry=CollectorRegistry(), **options
    )


async def _ignored(events: EventStore, count: int) -> Position:
    position = await events.head()
    for _ in range(count):
        position = (await events.append(f"i-{uuid.uuid4().hex}", [Ignored()])).position
    return position


def _registry(events: EventStore) -> CountingRegistry:
    registry = getattr(events, "registry", None)
    assert isinstance(registry, CountingRegistry)
    return registry


async def test_a_projection_decodes_only_its_types_and_reaches_the_head(
    events: EventStore, harness: SqlHarness
) -> None:
    streams = [f"s-{uuid.uuid4().hex[:8]}-{i}" for i in range(2)]
    await append_ticks(events, streams, 3)
    await _ignored(events, 4)
    await append_ticks(events, streams, 2)
    # The last events, three pages' worth and more, are all of a type it does not handle.
    head = await _ignored(events, 23)
    decoded = _registry(events).decoded
    decoded.clear()
    runner = _runner(events)
    runner.add(harness.tally(), harness.store)
    async with runner:
        reached = await runner.wait_for("tally", head, timeout=10)
        assert reached.reached, reached
        assert await harness.counts() == dict.fromkeys(streams, 5)
        assert await harness.store.live_checkpoint("tally") == head
        assert runner.status("tally").checkpoint == head
        assert runner.status("tally").events_behind == 0
    assert decoded == {Ticked.event_type: 10}
    processed = runner.metrics.registry.get_sample_value(
        "cqrskit_projection_events_processed_total", {"projection": "tally"}
    )
    assert processed == 37  # handled or passed over, as before


async def test_read_your_writes_on_only_other_types_returns_promptly(
    events: EventStore, harness: SqlHarness
) -> None:
    await append_ticks(events, ["s-1"], 2)
    runner = _runner(events)
    runner.add(harness.tally(), harness.store)
    async with runner:
        assert (await runner.wait_for("tally", await events.head(), timeout=10)).reached
        await asyncio.sleep(0.1)  # live, waiting for new events
        for count in (1, 9):  # one event, then more than a batch
            position = await _ignored(events, count)
            started = time.monotonic()
            result = await runner.wait_for("tally", position, timeout=10)
            assert result.reached, result
            assert time.monotonic() - started < 2.0
    assert await harness.counts() == {"s-1": 2}


async def test_only_other_types_arriving_cause_no_busy_loop(
    events: EventStore, harness: SqlHarness
) -> None:
    reads: Counter[str] = Counter()
    read_all, next_events = events.read_all, events.next_events

    async def counted_read_all(*args: Any, **kwargs: Any) -> Any:
        reads["read_all"] += 1
        return await read_all(*args, **kwargs)

    async def counted_next_events(*args: Any, **kwargs: Any) -> Any:
        reads["next_events"] += 1
        return await next_events(*args, **kwargs)

    events.read_all = counted_read_all  # type: ignore[method-assign]
    events.next_events = counted_next_events  # type: ignore[method-assign]
    runner = _runner(events, batch_size=5)
    runner.add(harness.tally(), harness.store)
    async with runner:
        position = await _ignored(events, 3)
        assert (await runner.wait_for("tally", position, timeout=10)).reached
        await asyncio.sleep(0.3)
        settled = reads.copy()
        await asyncio.sleep(0.5)
        assert reads == settled, "the runner kept reading while nothing arrived"
        assert reads["read_all"] + reads["next_events"] < 10


async def test_verify_builds_up_to_a_checkpoint_past_other_types(
    events: EventStore, harness: SqlHarness
) -> None:
    await append_ticks(events, ["a", "b"], 3)
    head = await _ignored(events, 10)
    runner = _runner(events)
    runner.add(harness.tally(), harness.store)
    async with runner:
        assert (await runner.wait_for("tally", head, timeout=10)).reached
    report = await verify_projection(events, harness.store, harness.tally(), batch_size=4)
    assert report.position == head
    assert report.differences == []


async def test_a_page_reaching_past_the_checkpoint_verify_compares_at(
    events: EventStore, harness: SqlHarness
) -> None:
    # The live version stops in the middle of a run of other types' events; the scratch
    # build reads pages that reach past that point and must stop exactly there.
    await append_ticks(events, ["a"], 2)
    middle = await _ignored(events, 3)
    runner = _runner(events)
    runner.add(harness.tally(), harness.store)
    async with runner:
        assert (await runner.wait_for("tally", middle, timeout=10)).reached
    await _ignored(events, 3)
    await append_ticks(events, ["a"], 1)
    report = await verify_projection(events, harness.store, harness.tally(), batch_size=100)
    assert report.position == middle
    assert report.differences == []
