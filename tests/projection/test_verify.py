"""``cqrskit.projection.verify`` on every read store it supports, with the contract's tally."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cqrskit.projection import Projection, ProjectionRunner
from cqrskit.projection.testing import (
    ReadModelHarness,
    RedisHarness,
    SqlHarness,
    Ticked,
    tick_registry,
)
from cqrskit.projection.verify import (
    PARKED,
    Difference,
    VerifyError,
    read_version,
    scratch_version,
    verify_projection,
)
from cqrskit.readstore import RedisReadStore, SqlReadStore
from cqrskit.store.base import EventStore
from cqrskit.store.memory import MemoryEventStore


def _streams(n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"s-{run}-{i}" for i in range(n)]


async def _append(events: EventStore, streams: list[str], per_stream: int) -> None:
    for _ in range(per_stream):
        for stream in streams:
            await events.append(stream, [Ticked()])


class VerifyContract:
    """What ``verify_projection`` must find on a read store (bind ``harness`` and the
    three ways of writing behind the runner's back)."""

    @pytest.fixture
    def harness(self) -> ReadModelHarness[Any]:
        raise NotImplementedError("bind harness for your read store")

    @abstractmethod
    async def set_count(self, harness: Any, tally: Projection[Any], stream: str, n: int) -> None:
        """Change (or add) one stream's count in the live model, moving no checkpoint."""

    @abstractmethod
    async def delete_count(self, harness: Any, tally: Projection[Any], stream: str) -> None:
        """Delete one stream's count in the live model, moving no checkpoint."""

    @abstractmethod
    def counts(self, difference: Difference, side: Any) -> dict[str, str]:
        """Stream -> count, as one side of a difference of the tally shows them."""

    @pytest.fixture
    def events(self) -> EventStore:
        return MemoryEventStore(tick_registry())

    @contextlib.asynccontextmanager
    async def running(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> AsyncIterator[ProjectionRunner]:
        runner = ProjectionRunner(events, batch_size=5, registry=CollectorRegistry())
        runner.add(harness.tally(), harness.store)
        async with runner:
            result = await runner.wait_for("tally", await events.head(), timeout=10)
            assert result.reached, result
            yield runner

    async def built(self, harness: ReadModelHarness[Any], events: EventStore) -> list[str]:
        streams = _streams(4)
        await _append(events, streams, 3)
        async with self.running(harness, events):
            pass
        return streams

    async def test_a_healthy_model_has_no_differences_and_no_scratch_is_left(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        await self.built(harness, events)
        report = await verify_projection(events, harness.store, harness.tally())
        assert report.differences == []
        assert (report.projection, report.version) == ("tally", 1)
        assert report.position == await events.head()
        assert report.compared >= 1
        await self.assert_only_live_version(harness)

    async def test_a_changed_row_is_reported_with_expected_and_actual(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = await self.built(harness, events)
        tally = harness.tally()
        await self.set_count(harness, tally, streams[1], 99)
        [difference] = (await verify_projection(events, harness.store, tally)).differences
        assert self.counts(difference, difference.expected) == {streams[1]: "3"}
        assert self.counts(difference, difference.actual) == {streams[1]: "99"}

    async def test_a_deleted_row_is_reported(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = await self.built(harness, events)
        tally = harness.tally()
        await self.delete_count(harness, tally, streams[2])
        [difference] = (await verify_projection(events, harness.store, tally)).differences
        assert self.counts(difference, difference.expected) == {streams[2]: "3"}
        assert self.counts(difference, difference.actual) == {}

    async def test_an_added_row_is_reported(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        await self.built(harness, events)
        tally = harness.tally()
        await self.set_count(harness, tally, "planted", 7)
        [difference] = (await verify_projection(events, harness.store, tally)).differences
        assert self.counts(difference, difference.expected) == {}
        assert self.counts(difference, difference.actual) == {"planted": "7"}

    async def test_compares_at_the_live_checkpoint_while_the_runner_keeps_writing(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = await self.built(harness, events)
        stop = asyncio.Event()

        async def write() -> None:
            while not stop.is_set():
                await _append(events, streams, 1)
                await asyncio.sleep(0.01)

        async with self.running(harness, events) as runner:
            writer = asyncio.create_task(write())
            try:
                reports = []
                for _ in range(3):
                    if reports:
                        # A verify can finish before the writer's next round: wait until
                        # the runner has moved past the last compared position, so each
                        # verify meets a checkpoint the runner has since advanced.
                        await self.runner_passed(runner, events, reports[-1].position)
                    reports.append(
                        await verify_projection(
                            events, harness.store, harness.tally(), max_attempts=20
                        )
                    )
            finally:
                stop.set()
                await writer
        assert [r.differences for r in reports] == [[], [], []]
        assert reports[0].position < reports[-1].position

    @staticmethod
    async def runner_passed(runner: ProjectionRunner, events: EventStore, seen: Any) -> None:
        assert await events.wait_for_events(seen, timeout=10), "the writer stopped writing"
        result = await runner.wait_for("tally", await events.head(), timeout=10)
        assert result.reached, result

    async def test_an_event_parked_on_one_side_only_is_reported(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = await self.built(harness, events)
        await events.append(streams[0], [Ticked(label="bad")])
        async with self.running(harness, events):
            pass
        # The live model handled it; rebuilt now, the handler refuses it and parks it.
        tally = harness.tally(poison={"bad"})
        differences = (await verify_projection(events, harness.store, tally)).differences
        parked = [d for d in differences if d.table == PARKED]
        assert len(parked) == 1
        assert "poisoned label 'bad'" in parked[0].expected
        assert parked[0].actual is None
        assert len(differences) == 2  # and the count it left out

    async def test_the_scratch_version_is_dropped_on_error(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        await self.built(harness, events)
        tally = harness.tally()
        seen: list[int] = []

        async def interrupted() -> None:
            async with scratch_version(harness.store, tally) as scratch:
                assert await harness.store.checkpoint("tally", scratch.version) is not None
                seen.append(scratch.version)
                raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError, match="interrupted"):
            await interrupted()
        assert seen
        assert seen[0] != 1
        await self.assert_only_live_version(harness)

    async def test_the_scratch_version_is_dropped_on_cancellation(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        await self.built(harness, events)
        reading, never = asyncio.Event(), asyncio.Event()

        class Stalling:
            """The event store, whose reads hang: the rebuild is under way for good."""

            def __getattr__(self, name: str) -> Any:
                return getattr(events, name)

            async def read_all(self, after: Any, limit: int = 1000, **options: Any) -> Any:
                reading.set()
                await never.wait()

        task = asyncio.create_task(verify_projection(Stalling(), harness.store, harness.tally()))  # type: ignore[arg-type]
        await asyncio.wait_for(reading.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await self.assert_only_live_version(harness)

    async def test_no_live_version_is_an_error(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        with pytest.raises(VerifyError, match="no live version"):
            await verify_projection(events, harness.store, harness.tally())
        assert await harness.store.live_version("tally") is None

    async def assert_only_live_version(self, harness: ReadModelHarness[Any]) -> None:
        """Nothing of a scratch version is left in the store."""


class TestSqliteVerify(VerifyContract):
    @pytest.fixture
    def harness(self, sqlite_read_store: SqlReadStore) -> ReadModelHarness[Any]:
        return SqlHarness(sqlite_read_store)

    async def set_count(self, harness: Any, tally: Projection[Any], stream: str, n: int) -> None:
        async with harness.store.transaction(tally, None) as tx:
            await tx.uow.execute(
                "INSERT INTO {counts} (stream_id, n, last_version) VALUES (?, ?, 0) "
                "ON CONFLICT (stream_id) DO UPDATE SET n = excluded.n",
                stream,
                n,
            )

    async def delete_count(self, harness: Any, tally: Projection[Any], stream: str) -> None:
        async with harness.store.transaction(tally, None) as tx:
            await tx.uow.execute("DELETE FROM {counts} WHERE stream_id = ?", stream)

    def counts(self, difference: Difference, side: Any) -> dict[str, str]:
        assert difference.table == "counts"
        assert difference.key.startswith("stream_id=")
        return {} if side is None else {difference.key[10:]: str(side["n"])}

    async def assert_only_live_version(self, harness: ReadModelHarness[Any]) -> None:
        store = harness.store
        assert isinstance(store, SqlReadStore)
        async with store.snapshot() as snap:
            versions = await snap.fetch(
                "SELECT version FROM cqrskit_checkpoints WHERE projection = 'tally'"
            )
            tables = await snap.fetch(
                "SELECT physical FROM cqrskit_projection_tables WHERE projection = 'tally'"
            )
        assert [r["version"] for r in versions] == [1]
        assert [r["physical"] for r in tables] == ["tally__counts_v1"]


@pytest.mark.postgres
class TestPostgresVerify(TestSqliteVerify):
    @pytest.fixture
    def harness(self, pg_read_store: SqlReadStore) -> ReadModelHarness[Any]:
        return SqlHarness(pg_read_store)


@pytest.mark.redis
class TestRedisVerify(VerifyContract):
    @pytest.fixture
    def harness(self, redis_read_store: RedisReadStore) -> ReadModelHarness[Any]:
        return RedisHarness(redis_read_store)

    async def set_count(self, harness: Any, tally: Projection[Any], stream: str, n: int) -> None:
        await harness.store.client.hset(
            await harness.store.live_prefix("tally") + "counts", stream, n
        )

    async def delete_count(self, harness: Any, tally: Projection[Any], stream: str) -> None:
        await harness.store.client.hdel(await harness.store.live_prefix("tally") + "counts", stream)

    def counts(self, difference: Difference, side: Any) -> dict[str, str]:
        assert (difference.table, difference.key) == ("", "counts")
        return {k: v for k, v in (side or {}).items() if v is not None}

    async def assert_only_live_version(self, harness: ReadModelHarness[Any]) -> None:
        store = harness.store
        assert isinstance(store, RedisReadStore)
        keys = [
            k.decode()[len(store.prefix) :]
            async for k in store.client.scan_iter(store.prefix + "*")
        ]
        versions = {m.group(1) for k in keys for m in [re.search(r"tally:v([0-9]+)", k)] if m}
        assert versions == {"1"}, keys


async def test_read_version_of_a_missing_version_is_none(sqlite_read_store: SqlReadStore) -> None:
    harness = SqlHarness(sqlite_read_store)
    assert await read_version(sqlite_read_store, harness.tally(), 5) is None
