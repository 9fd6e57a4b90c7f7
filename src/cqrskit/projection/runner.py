"""The projection runner: many projections, each caught up and then kept live independently.

Each projection runs in its own task. Once it holds its lease it catches up from its
checkpoint in batches, then waits for event-store notifications. Every batch is one
read-store transaction: the projection's writes plus the new checkpoint (and a parked
event, or the switch to a rebuilt version). Stopping lets the batch in flight finish;
cancelling rolls it back whole.

Each projection's worker is in :mod:`cqrskit.projection._worker` (its loop in ``_loop``,
applying batches in ``_batches``, telling failures apart in ``_failures``); the operations
on parked events in ``_parked``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from cqrskit.consistency import WaitResult, wait_for
from cqrskit.projection._parked import _ParkedEvents
from cqrskit.projection._worker import _ACTIVE, _Worker
from cqrskit.projection.base import Projection, ProjectionState, ProjectionStatus, RebuildProgress
from cqrskit.projection.control import REPORT, encode_status
from cqrskit.projection.leases import Leases, LocalLeases
from cqrskit.projection.metrics import ProjectionMetrics
from cqrskit.readstore.base import ReadStore
from cqrskit.store.base import EventStore, Position

__all__ = ["ProgressCallback", "ProjectionRunner"]

log = logging.getLogger("cqrskit.projection")

ProgressCallback = Callable[[RebuildProgress], None]


class ProjectionRunner(_ParkedEvents):
    """Runs projections against one event store; use as ``async with runner: ...``.

    - ``leases``: who may run which projection (default: this process only; use
      :class:`~cqrskit.projection.leases.PostgresLeases` for several runner processes);
    - ``metrics``: where Prometheus metrics go (default: a registry of the runner's own,
      at ``runner.metrics.registry``);
    - ``batch_size``: at most this many events are read and committed per transaction.
      Live, batches hold what has arrived; catching up and rebuilding, larger batches
      spread each transaction's fixed cost over more events (from 1,000 to 5,000 made
      rebuilds 1.2-1.4x faster in bench/bench_projections.py; worth it for large
      rebuilds), smaller ones keep transactions short and memory low;
    - ``idle_wait``: longest single wait for event-store notifications when live;
    - ``lease_retry``: how often a standby tries to take over;
    - ``drop_delay``: grace before a rebuilt projection's old version is dropped, so
      readers that resolved its tables just before the switch can finish;
    - ``error_pause``: wait before starting over after the event store or read store
      failed outside any event's handling (the checkpoint did not move), or could not be
      reached at all (then that is not counted against the event being handled); it
      doubles with each failure in a row, up to ``max_error_pause``. Each attempt logs
      one WARNING line (projection, store, error, next pause);
    - ``on_progress``: called with every :class:`RebuildProgress` (e.g. a CLI progress bar);
    - ``holder``: how this process is named in the statuses it publishes (``host:pid``);
    - ``status_interval``: how often the status of each projection this runner is active
      for is published into its read store, for other processes
      (:func:`~cqrskit.projection.control.published_statuses`);
    - ``control_interval``: how often, at most, a live projection looks for a rebuild
      request (:func:`~cqrskit.projection.control.request_rebuild`).
    """

    def __init__(
        self,
        event_store: EventStore,
        *,
        leases: Leases | None = None,
        metrics: ProjectionMetrics | None = None,
        registry: CollectorRegistry | None = None,
        batch_size: int = 2000,
        idle_wait: float = 5.0,
        lease_retry: float = 0.5,
        drop_delay: float = 2.0,
        error_pause: float = 1.0,
        max_error_pause: float = 30.0,
        on_progress: ProgressCallback | None = None,
        holder: str | None = None,
        status_interval: float = 1.0,
        control_interval: float = 1.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.event_store = event_store
        self.leases: Leases = leases if leases is not None else LocalLeases()
        self.metrics = metrics if metrics is not None else ProjectionMetrics(registry)
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.lease_retry = lease_retry
        self.drop_delay = drop_delay
        self.error_pause = error_pause
        self.max_error_pause = max_error_pause
        self.on_progress = on_progress
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.status_interval = status_interval
        self.control_interval = control_interval
        self._workers: dict[str, _Worker] = {}
        self._publisher: asyncio.Task[None] | None = None

    def add(
        self,
        projection: Projection[Any],
        store: ReadStore[Any],
        *,
        previous: Projection[Any] | None = None,
    ) -> None:
        """Run ``projection`` into ``store``.

        When the store's live version differs from ``projection.version``, the new version
        is rebuilt beside it and made live once caught up. Pass the projection of the live
        version as ``previous`` to keep it current meanwhile; without it the old version
        stays as it was (still consistent, but stale) until the switch.
        """
        if projection.name in self._workers:
            raise ValueError(f"projection {projection.name!r} is already added")
        if previous is not None and previous.name != projection.name:
            raise ValueError("previous must be an older version of the same projection")
        worker = _Worker(self, projection, store, previous, code=projection, previous_code=previous)
        self._workers[projection.name] = worker
        if self._running:
            # Standing by from now, not once the task first runs: progress() called right
            # away follows the build that is about to start.
            worker.state = ProjectionState.STANDBY
            worker.task = asyncio.create_task(worker.run(), name=f"projection:{projection.name}")

    _running = False

    async def start(self) -> None:
        """Start every projection's task."""
        self._running = True
        for worker in self._workers.values():
            if worker.task is None or worker.task.done():
                worker.stopping.clear()
                worker.state = ProjectionState.STANDBY
                worker.task = asyncio.create_task(worker.run(), name=f"projection:{worker.name}")
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.create_task(self._publish(), name="projection-statuses")

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully: batches in flight finish (or, after ``timeout``, roll back)."""
        self._running = False
        active = [w for w in self._workers.values() if w.state in _ACTIVE]
        tasks = []
        for worker in self._workers.values():
            worker.stopping.set()
            if worker.task is not None:
                tasks.append(worker.task)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
            self._publisher = None
        # The last word of this runner: its projections are stopped, not live.
        await self._publish_once(active)

    async def _publish(self) -> None:
        while True:
            await self._publish_once([w for w in self._workers.values() if w.state in _ACTIVE])
            await asyncio.sleep(self.status_interval)

    async def _publish_once(self, workers: Sequence[_Worker]) -> None:
        for worker in workers:
            try:
                # Operators retry and discard parked events from other processes too.
                known = worker.parked
                counted = await worker.store.parked_count(worker.name, worker.projection.version)
                if worker.parked == known:  # the worker parked none meanwhile
                    worker.parked = counted
                    self.metrics.parked.labels(worker.name).set(counted)
                    if counted == 0 and known > 0 and worker.state is ProjectionState.LIVE:
                        worker.last_error = None  # what failed was retried or discarded
                await worker.store.put_control(
                    worker.name, REPORT, encode_status(worker.status(), self.holder)
                )
            except Exception as exc:
                # Statuses are for people; a store that cannot take one now is retried
                # at the next interval, and the projection's own work is not disturbed.
                log.debug("%s: could not publish the status: %r", worker.name, exc)

    async def __aenter__(self) -> ProjectionRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _worker(self, name: str) -> _Worker:
        try:
            return self._workers[name]
        except KeyError:
            raise LookupError(f"no projection {name!r} in this runner") from None

    def status(self, name: str) -> ProjectionStatus:
        """The status of one projection."""
        return self._worker(name).status()

    def statuses(self) -> list[ProjectionStatus]:
        """The status of every projection, in the order they were added."""
        return [w.status() for w in self._workers.values()]

    def resume(self, name: str) -> None:
        """Let a faulted projection retry from its checkpoint (after fixing the cause)."""
        self._worker(name).resumed.set()

    async def wait_for(self, name: str, token: str | Position, timeout: float) -> WaitResult:
        """Wait until the projection's live checkpoint passes ``token`` (read-your-writes)."""
        return await wait_for(self._worker(name).store, name, token, timeout)

    async def progress(self, name: str) -> AsyncIterator[RebuildProgress]:
        """Progress reports of a rebuild or first build of ``name`` until it finishes (or
        the runner stops); ends at once when none is running or about to run."""
        worker = self._worker(name)
        queue: asyncio.Queue[RebuildProgress] = asyncio.Queue()
        worker.subscribers.append(queue)
        try:
            while True:
                building = worker.state is ProjectionState.CATCHING_UP and (
                    worker.progress is not None and not worker.progress.finished
                )
                idle = not building and worker.state not in (
                    ProjectionState.REBUILDING,
                    ProjectionState.STANDBY,
                )
                if idle and queue.empty():
                    return
                get = asyncio.create_task(queue.get())
                stop = asyncio.create_task(worker.stopping.wait())
                try:
                    await asyncio.wait([get, stop], timeout=1.0, return_when="FIRST_COMPLETED")
                finally:
                    stop.cancel()
                    if not get.done():
                        get.cancel()
                if get.done() and not get.cancelled():
                    report = get.result()
                    yield report
                    if report.finished:
                        return
                elif worker.stopping.is_set():
                    return
        finally:
            worker.subscribers.remove(queue)
