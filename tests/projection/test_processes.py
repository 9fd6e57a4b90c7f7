"""Runners in other processes: SIGKILL during catch-up, and failover between two runners.

Counters make double application visible: after the last clean run every stream's count
must equal its number of events, exactly as a full replay into a fresh store computes it.
The crash test runs on SQL (SQLite, PostgreSQL) and Redis read stores, each with the
contract tally written for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cqrskit.projection import ProjectionRunner
from cqrskit.projection.testing import (
    Ignored,
    MemoryHarness,
    SqlHarness,
    Ticked,
    harness_for,
    tick_registry,
)
from cqrskit.readstore import (
    MemoryReadStore,
    ReadStore,
    SqlReadStore,
    open_read_store,
    open_sql_read_store,
)
from cqrskit.store import START, EventStore, Position, StreamAppend, open_event_store

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("runner_child.py")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Child:
    """A runner process and the last state line it printed."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        return self.lines[-1].split(" ")[0] if self.lines else "starting"

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode().strip())

    def kill(self) -> None:
        self.process.kill()

    def process_reaper(self) -> Callable[[], None]:
        """A finalizer that kills the process if a failed test left it running."""

        def reap() -> None:
            if self.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)

        return reap

    async def wait(self) -> int:
        code = await self.process.wait()
        if self.reader is not None:
            await self.reader
        return code


async def spawn(*args: str) -> Child:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        *args,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    child = Child(process)
    child.reader = asyncio.create_task(child._read())
    return child


async def write_events(events: EventStore, streams: list[str], rounds: int) -> None:
    """Each round: ten ticks on every stream in one multi-stream append, plus one ignored."""
    for _ in range(rounds):
        appends = [StreamAppend(s, [Ticked() for _ in range(10)]) for s in streams]
        appends.append(StreamAppend(f"ignored-{uuid.uuid4().hex[:6]}", [Ignored()]))
        await events.append_many(appends)


async def expected_counts(events: EventStore) -> dict[str, int]:
    counts: Counter[str] = Counter()
    after = START
    while batch := await events.read_all(after, 1000):
        counts.update(e.stream_id for e in batch if isinstance(e.event, Ticked))
        after = batch[-1].position
    return dict(counts)


async def full_replay(events: EventStore) -> dict[str, int]:
    """The tally built from scratch in one clean in-process run."""
    harness = MemoryHarness(MemoryReadStore())
    runner = ProjectionRunner(events, registry=CollectorRegistry(), batch_size=1000)
    runner.add(harness.tally(), harness.store)
    async with runner:
        assert (await runner.wait_for("tally", await events.head(), timeout=30)).reached
    return await harness.counts()


async def wait_until(
    store: ReadStore[Any], predicate: Any, timeout: float, what: str
) -> Position | None:
    deadline = time.monotonic() + timeout
    while True:
        checkpoint = await store.live_checkpoint("tally")
        if predicate(checkpoint):
            return checkpoint
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s (at {checkpoint})")
        await asyncio.sleep(0.01)


async def caught_up(events: EventStore, store: ReadStore[Any], timeout: float, what: str) -> None:
    """Wait until the checkpoint reaches the head, re-reading the head each time: on
    PostgreSQL, events behind a transaction a killed runner left open become readable
    only once the server has ended that transaction."""
    deadline = time.monotonic() + timeout
    held = 0
    while True:
        head = await events.head()
        checkpoint = await store.live_checkpoint("tally")
        held = held + 1 if checkpoint is not None and checkpoint >= head else 0
        if held >= 10:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: at {checkpoint}, head at {head} after {timeout}s")
        await asyncio.sleep(0.01)


@dataclass
class Backend:
    event_url: str
    read_url: str
    leases: str | None = None


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("postgresql+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Where the events and the read model live: SQLite, PostgreSQL, or PostgreSQL events
    with a Redis read model (under a key prefix of its own, deleted afterwards)."""
    if request.param == "sqlite":
        return Backend(f"sqlite:///{tmp_path}/events.db", f"sqlite:///{tmp_path}/read.db")
    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("pg_schema")
    if request.param == "postgresql+redis":
        redis_url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        return Backend(f"{url}?schema={schema}", f"{redis_url}?prefix={prefix}", url)
    return Backend(f"{url}?schema={schema}", f"{url}?schema={schema}", url)


@pytest.fixture
async def stores(backend: Backend) -> AsyncIterator[tuple[EventStore, ReadStore[Any]]]:
    events = await open_event_store(backend.event_url, tick_registry())
    store: ReadStore[Any] = await open_read_store(backend.read_url)
    yield events, store
    await store.close()
    await events.close()


async def test_sigkill_during_catch_up_then_a_clean_run_equals_a_full_replay(
    backend: Backend, stores: tuple[EventStore, ReadStore[Any]], request: pytest.FixtureRequest
) -> None:
    events, store = stores
    streams = [f"crash-{i}" for i in range(20)]
    await write_events(events, streams, 12)  # 2,412 events, ~50 batches of 50
    rng = random.Random(4)
    checkpoints: list[Position | None] = []
    for _ in range(4):
        child = await spawn(backend.event_url, backend.read_url, "--delay", "0.01")
        request.addfinalizer(child.process_reaper())
        before = await store.live_checkpoint("tally")
        # Kill once this run has committed something (so every kill lands mid catch-up).
        await wait_until(store, lambda cp, b=before: cp is not None and cp != b, 30, "progress")
        await asyncio.sleep(rng.uniform(0.0, 0.15))
        child.kill()
        assert await child.wait() == -9
        checkpoints.append(await store.live_checkpoint("tally"))
        await write_events(events, streams, 1)  # writes go on between crashes
    head = await events.head()
    assert all(cp is not None and cp < head for cp in checkpoints), "killed after catching up"
    assert checkpoints == sorted(checkpoints, key=lambda cp: cp or START)

    child = await spawn(backend.event_url, backend.read_url)
    request.addfinalizer(child.process_reaper())
    await caught_up(events, store, 60, "the final catch-up")
    child.process.terminate()
    assert await child.wait() == 0
    assert child.lines[-1] == "stopped"

    model = await harness_for(store).counts()
    assert model == await expected_counts(events)
    assert model == await full_replay(events)


@pytest.mark.postgres
async def test_failover_between_two_runners_applies_nothing_twice(
    postgres_url: str, pg_schema: str
) -> None:
    url = f"{postgres_url}?schema={pg_schema}"
    events = await open_event_store(url, tick_registry())
    store: SqlReadStore = await open_sql_read_store(url)
    children: list[Child] = []
    try:
        streams = [f"failover-{i}" for i in range(10)]
        await write_events(events, streams, 20)  # 2,020 events
        options = ("--leases", postgres_url, "--delay", "0.01")
        children = [await spawn(url, url, *options) for _ in range(2)]
        active_states = ("catching-up", "live", "rebuilding")

        async def one_active() -> Child:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                active = [c for c in children if c.state in active_states]
                if active and all(c.state in (*active_states, "standby") for c in children):
                    assert len(active) == 1, [c.lines[-3:] for c in children]
                    return active[0]
                await asyncio.sleep(0.01)
            raise AssertionError(f"no single active runner: {[c.lines for c in children]}")

        first = await one_active()
        other = next(c for c in children if c is not first)
        assert other.state == "standby"
        await wait_until(store, lambda cp: cp is not None and cp > START, 30, "progress")
        first.kill()
        killed_at = time.monotonic()
        assert await first.wait() == -9
        at_kill = await store.live_checkpoint("tally")
        await write_events(events, streams, 2)

        deadline = time.monotonic() + 15
        while other.state not in active_states:
            assert time.monotonic() < deadline, f"no takeover: {other.lines}"
            await asyncio.sleep(0.01)
        takeover = time.monotonic() - killed_at
        print(f"\nfailover: standby took over {takeover * 1000:.0f} ms after SIGKILL")
        head = await events.head()
        assert at_kill is not None
        assert at_kill < head
        await caught_up(events, store, 60, "catch-up after failover")
        other.process.terminate()
        assert await other.wait() == 0

        model = await SqlHarness(store).counts()
        assert model == await expected_counts(events)
        assert model == await full_replay(events)
    finally:
        for child in children:
            if child.process.returncode is None:
                child.kill()
                await child.wait()
        await store.close()
        await events.close()
