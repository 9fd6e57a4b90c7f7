"""The projection contract's rebuild: a new version built beside the live one, readers
switched over, the old version dropped."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cqrskit.projection._contract_kit import ReadModelHarness, _ContractBase, _streams, append_ticks
from cqrskit.projection.base import ProjectionState, RebuildProgress
from cqrskit.store.base import EventStore


class _RebuildTests(_ContractBase):
    """Rebuilding beside the live version, then switching readers over."""

    # -- rebuild ------------------------------------------------------------------------

    async def test_rebuild_beside_the_live_version_then_switch(
        self, harness: ReadModelHarness[Any], events: EventStore
    ) -> None:
        streams = _streams(4)
        await append_ticks(events, streams, 10)
        runner = self.runner(events)
        runner.add(harness.tally(version=1), harness.store)
        async with runner:
            await self.caught_up(runner, events, "tally")
        reports: list[RebuildProgress] = []
        runner = self.runner(events, on_progress=reports.append)
        runner.add(harness.tally(version=2), harness.store, previous=harness.tally(version=1))
        async with runner:
            writes = 0
            while runner.status("tally").state is not ProjectionState.LIVE or writes < 3:
                await append_ticks(events, streams[:1], 1)
                writes += 1
                counts = await harness.counts()
                # Readers see a complete model at every moment: old (kept current) or new.
                assert sum(counts.values()) >= 40
                await asyncio.sleep(0.005)
            await self.caught_up(runner, events, "tally")
            assert await harness.store.live_version("tally") == 2
            deadline = time.monotonic() + 5
            while await harness.store.checkpoint("tally", 1) is not None:
                assert time.monotonic() < deadline, "the old version was not dropped"
                await asyncio.sleep(0.01)
        assert await harness.counts() == {**dict.fromkeys(streams, 10), streams[0]: 10 + writes}
        assert reports
        assert reports[-1].finished
        assert reports[-1].done == reports[-1].total >= 40
