"""A check for any projection: the read model it builds must depend only on the events,
not on batch sizes, replays or rebuilds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from cqrskit.projection.base import Projection
from cqrskit.projection.runner import ProjectionRunner
from cqrskit.readstore.base import ReadStore
from cqrskit.store.base import START, EventStore, RecordedEvent

T = TypeVar("T")


async def _handled_events(
    events: EventStore, projection: Projection[Any], page: int
) -> list[RecordedEvent]:
    """Every event ``projection`` handles, read as the runner reads them."""
    handled: list[RecordedEvent] = []
    after = START
    while True:
        more = await events.read_all(after, page, types=projection.handles)
        handled += [e for e in more if projection.handles_event(e)]
        if more.scanned < page:
            return handled
        after = more.end


def _checked_runner(events: EventStore, batch_size: int) -> ProjectionRunner:
    return ProjectionRunner(
        events,
        batch_size=batch_size,
        idle_wait=0.2,
        drop_delay=0.05,
        lease_retry=0.05,
        registry=CollectorRegistry(),
    )


async def _no_parked(store: ReadStore[Any], projection: Projection[Any], when: str) -> None:
    parked = await store.parked_events(projection.name, projection.version)
    if parked:
        raise AssertionError(
            f"{projection!r} parked {len(parked)} event(s) {when}; first: {parked[0].error}"
        )


def _same(expected: object, actual: object, what: str) -> None:
    if expected != actual:
        raise AssertionError(
            f"{what} changed the read model:\n  expected {expected!r:.2000}\n"
            f"  actual   {actual!r:.2000}"
        )


async def check_projection(
    make_projection: Callable[[int], Projection[Any]],
    open_store: Callable[[], Awaitable[ReadStore[Any]]],
    events: EventStore,
    snapshot: Callable[[ReadStore[Any]], Awaitable[T]],
    *,
    batch_sizes: tuple[int, int] = (1, 1000),
    timeout: float = 60.0,
) -> T:
    """Check that a projection's read model depends only on the events, then return it.

    - ``make_projection(version)`` builds the projection at a version (1, then 2);
    - ``open_store()`` opens a new, empty read store of the kind under test (it is called
      twice; the check closes what it opens);
    - ``events`` holds the events to project (any event store);
    - ``snapshot(store)`` reads the live read model into plain, comparable data (rows
      sorted, store-internal ids left out; readers' answers do well).

    Proves, raising :class:`AssertionError` with both snapshots otherwise:

    1. the runner builds the same model in batches of ``batch_sizes[0]`` as of
       ``batch_sizes[1]``, with no event parked;
    2. handling every event again (a replayed batch), and then the later half again,
       each in transactions of their own, leaves the model as it was (idempotent writes);
    3. a rebuild into version 2 beside the live version 1 (``previous=``) ends, after the
       switch, with the same model.

    Returns the final snapshot, for the test's own assertions on its content.
    """
    small, large = batch_sizes
    stores: list[ReadStore[Any]] = []
    try:
        by_batch: list[T] = []
        for size in (small, large):
            store = await open_store()
            stores.append(store)
            projection = make_projection(1)
            runner = _checked_runner(events, size)
            runner.add(projection, store)
            async with runner:
                reached = await runner.wait_for(projection.name, await events.head(), timeout)
                if not reached.reached:
                    raise AssertionError(f"{projection!r} did not catch up: {reached}")
            await _no_parked(store, projection, f"in batches of {size}")
            by_batch.append(await snapshot(store))
        _same(by_batch[0], by_batch[1], f"batches of {large} instead of {small}")
        expected = by_batch[1]

        store = stores[1]
        projection = make_projection(1)
        handled = await _handled_events(events, projection, large)
        for replay in (handled, handled[len(handled) // 2 :]):
            for start in range(0, len(replay), large):
                # No checkpoint move: just the projection's effects, applied a second time.
                async with store.transaction(projection, None) as tx:
                    await projection.handle(replay[start : start + large], tx.uow)
        _same(expected, await snapshot(store), "handling the events again")

        rebuilt = make_projection(2)
        runner = _checked_runner(events, large)
        runner.add(rebuilt, store, previous=make_projection(1))
        deadline = time.monotonic() + timeout
        async with runner:
            while await store.live_version(rebuilt.name) != rebuilt.version:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{rebuilt!r} was not made live within {timeout}s")
                await asyncio.sleep(0.01)
        await _no_parked(store, rebuilt, "while rebuilding")
        final = await snapshot(store)
        _same(expected, final, "rebuilding into a new version")
        return final
    finally:
        for store in stores:
            await store.close()
