"""A projection runner in its own process, for the crash and failover tests.

``python runner_child.py EVENT_URL READ_URL [--leases POSTGRES_URL] [--delay SECONDS]``

Runs the contract tally projection until killed (or SIGTERM: graceful stop), printing its
state and checkpoint on every change so the parent can tell which runner is active.
``--delay`` slows each batch, so a test can kill the process in the middle of catch-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from cqrskit.projection import FailurePolicy, PostgresLeases, ProjectionRunner
from cqrskit.projection.testing import SqlTally, tick_registry
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork, open_read_store
from cqrskit.store import RecordedEvent, open_event_store


class SlowTally(SqlTally):
    delay = 0.0

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        await super().handle(events, uow)
        if self.delay:
            # Inside the transaction: a kill now lands mid-batch, before the commit.
            await asyncio.sleep(self.delay)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("event_url")
    parser.add_argument("read_url")
    parser.add_argument("--leases")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args(argv)
    events = await open_event_store(args.event_url, tick_registry())
    store: SqlReadStore = await open_read_store(args.read_url)
    projection = SlowTally(
        name="tally", version=1, failure_policy=FailurePolicy(retries=0), poison=set()
    )
    projection.delay = args.delay
    options: dict[str, Any] = {"registry": CollectorRegistry(), "lease_retry": 0.1}
    if args.leases:
        options["leases"] = PostgresLeases(args.leases, check_interval=0.5)
    runner = ProjectionRunner(events, batch_size=args.batch, **options)
    runner.add(projection, store)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with runner:
        last = None
        while not stop.is_set():
            status = runner.status("tally")
            line = f"{status.state.value} {status.checkpoint}"
            if line != last:
                print(line, flush=True)
                last = line
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)
    print("stopped", flush=True)
    await store.close()
    await events.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
