"""A projection runner in its own process, for the crash and failover tests.

``python runner_child.py EVENT_URL READ_URL [--leases POSTGRES_URL] [--delay SECONDS]``

Runs the contract tally projection written for the read store READ_URL names (SQL or
Redis) until killed (or SIGTERM: graceful stop), printing its state and checkpoint on every
change so the parent can tell which runner is active. ``--delay`` slows each batch, so a
test can kill the process in the middle of catch-up.
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

from cqrskit.projection import FailurePolicy, PostgresLeases, Projection, ProjectionRunner
from cqrskit.projection.testing import harness_for, tick_registry
from cqrskit.readstore import ReadStore, open_read_store
from cqrskit.store import RecordedEvent, open_event_store


def slowed(tally_class: Any, delay: float) -> type[Projection[Any]]:
    """``tally_class`` with every batch held open ``delay`` seconds after its writes."""

    class SlowTally(tally_class):
        async def handle(self, events: Sequence[RecordedEvent], uow: Any) -> None:
            await super().handle(events, uow)
            # Still inside the batch (SQL: the transaction is open; Redis: the writes are
            # queued on the MULTI, not yet EXECed), so a kill now lands before the commit.
            await asyncio.sleep(delay)

    return SlowTally


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("event_url")
    parser.add_argument("read_url")
    parser.add_argument("--leases")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args(argv)
    events = await open_event_store(args.event_url, tick_registry())
    store: ReadStore[Any] = await open_read_store(args.read_url)
    tally_class = harness_for(store).tally_class
    if args.delay:
        tally_class = slowed(tally_class, args.delay)
    projection = tally_class(
        name="tally", version=1, failure_policy=FailurePolicy(retries=0), poison=set()
    )
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
