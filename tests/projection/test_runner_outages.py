"""A store that cannot be reached: one warning line per attempt, backing off, no event
blamed for it, and back to work by itself when the store returns."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cqrskit.messages import DomainEvent
from cqrskit.projection import FailurePolicy, ProjectionRunner
from cqrskit.projection.testing import MemoryHarness, append_ticks, tick_registry
from cqrskit.readstore import MemoryReadStore
from cqrskit.readstore.base import ProjectionSpec
from cqrskit.store import START, EventPage, MemoryEventStore, Position


def _refused() -> ConnectionRefusedError:
    return ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


class FlakyEvents(MemoryEventStore):
    """Refuses ``failures`` reads, then reads as usual."""

    failures = 0

    async def read_all(
        self,
        after: Position | str = START,
        limit: int = 1000,
        *,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        if self.failures > 0:
            self.failures -= 1
            raise _refused()
        return await super().read_all(after, limit, types=types)


class FlakyReadStore(MemoryReadStore):
    """Refuses ``failures`` transactions, then works as usual."""

    failures = 0

    def transaction(self, projection: ProjectionSpec, expected: Position | None) -> Any:
        if self.failures > 0:
            self.failures -= 1
            return _refusing()
        return super().transaction(projection, expected)


@asynccontextmanager
async def _refusing() -> AsyncIterator[Any]:
    raise _refused()
    yield  # pragma: no cover - an async generator that fails on entry


def _runner(events: MemoryEventStore) -> ProjectionRunner:
    return ProjectionRunner(
        events,
        batch_size=50,
        idle_wait=0.5,
        error_pause=0.1,
        max_error_pause=0.2,
        registry=CollectorRegistry(),
    )


def _outage_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "cqrskit.projection" and r.levelno == level and "unreachable" in r.message
    ]


async def test_an_unreachable_event_store_logs_one_line_per_attempt_then_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cqrskit.projection")
    events = FlakyEvents(tick_registry())
    await append_ticks(events, ["a", "b"], 3)
    events.failures = 3
    harness = MemoryHarness(MemoryReadStore())
    runner = _runner(events)
    runner.add(harness.tally(), harness.store)
    async with runner:
        assert (await runner.wait_for("tally", await events.head(), timeout=10)).reached
    warnings = _outage_lines(caplog, logging.WARNING)
    assert len(warnings) == 3
    for record in warnings:
        assert "\n" not in record.message
        assert record.exc_info is None
        assert record.message.startswith("tally: event store unreachable (ConnectionRefusedError")
        assert "Connect call failed" in record.message
    pauses = [re.search(r"retrying in ([0-9.]+) s", r.message) for r in warnings]
    assert [float(m.group(1)) for m in pauses if m] == [0.1, 0.2, 0.2]
    # The traceback once, for whoever looks at DEBUG.
    assert len([r for r in _outage_lines(caplog, logging.DEBUG) if r.exc_info]) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("working again after 3" in r.message for r in caplog.records)
    assert await harness.counts() == {"a": 3, "b": 3}


async def test_an_unreachable_read_store_parks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cqrskit.projection")
    events = FlakyEvents(tick_registry())
    await append_ticks(events, ["a", "b"], 3)
    store = FlakyReadStore()
    harness = MemoryHarness(store)
    runner = _runner(events)
    policy = FailurePolicy(retries=1, backoff=0.001, then="park")
    runner.add(harness.tally(policy=policy), store)
    async with runner:
        # Prepared first, so that the outage hits the batches, not the start-up.
        assert (await runner.wait_for("tally", START, timeout=10)).reached
        store.failures = 4
        await append_ticks(events, ["a", "b"], 1)
        assert (await runner.wait_for("tally", await events.head(), timeout=10)).reached
        assert await runner.parked("tally") == []
        assert runner.status("tally").parked == 0
    warnings = _outage_lines(caplog, logging.WARNING)
    assert len(warnings) == 4
    assert all(r.message.startswith("tally: read store unreachable") for r in warnings)
    # No attempt of any event was counted: the store, not the event, failed.
    assert not [r for r in caplog.records if "attempt 1/2 failed" in r.message]
    assert await harness.counts() == {"a": 4, "b": 4}
