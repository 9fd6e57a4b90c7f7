"""A projection worker's loop: catch up in batches, switch a rebuilt version live, follow
new events, wait out a fault, and report lag and rebuild progress."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cqrskit.messages import DomainEvent
from cqrskit.projection._failures import (
    _CheckpointVanished,
    _Faulted,
    _LeaseLost,
    _RebuildRequested,
    _Stopping,
    _StoreFailed,
)
from cqrskit.projection.base import Projection, ProjectionState, RebuildProgress
from cqrskit.projection.leases import Lease
from cqrskit.readstore.base import ReadStore
from cqrskit.store.base import START, EventPage, EventStore, Position, RecordedEvent

if TYPE_CHECKING:
    from cqrskit.projection.runner import ProjectionRunner

log = logging.getLogger("cqrskit.projection")


@dataclass
class _Progress:
    started: float
    start_done: int = 0
    done: int = 0
    total: int = 0


class _Prefetcher:
    """Reads the next batch while the current one is handled and committed.

    Catching up then costs about max(read, write) per batch rather than their sum. A
    prefetched batch is used only if the checkpoint ended exactly where it starts.
    Batches hold only events of the types the projection handles: the store passes over
    the others without decoding them (a batch covers ``batch_size`` stored events all the
    same, and ends where its read reached).
    """

    def __init__(
        self, events: EventStore, batch_size: int, types: tuple[type[DomainEvent], ...]
    ) -> None:
        self._events = events
        self._batch_size = batch_size
        self._types = types
        self._after: Position | None = None
        self._next: asyncio.Task[EventPage] | None = None

    async def read(self, after: Position) -> EventPage:
        try:
            if self._next is not None and self._after == after:
                task, self._next = self._next, None
                page = await task
            else:
                self.cancel()
                page = await self._read(after)
        except Exception as exc:
            raise _StoreFailed("event store", exc) from exc
        if page.scanned == self._batch_size:
            self._after = page.end
            self._next = asyncio.create_task(self._read(page.end))
        return page

    def _read(self, after: Position) -> Coroutine[Any, Any, EventPage]:
        return self._events.read_all(after, self._batch_size, types=self._types)

    def cancel(self) -> None:
        if self._next is not None:
            if self._next.done() and not self._next.cancelled():
                self._next.exception()  # retrieved: a failed prefetch is simply dropped
            self._next.cancel()
            self._next = None


class _Watch:
    """A follow's stop event and lease, and tasks that end when either fires: made once
    for a whole follow, not for every wait for new events (three tasks a wake-up were a
    good part of a live projection's cost per batch)."""

    def __init__(self, stop: asyncio.Event, lease: Lease) -> None:
        self.stop = stop
        self.lease = lease
        self.tasks = (asyncio.create_task(stop.wait()), asyncio.create_task(lease.lost.wait()))

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()


@dataclass
class _Switch:
    """A rebuild's way to the switch: freeze the old version, then clean it up."""

    live_version: int | None
    freeze: Callable[[], Awaitable[None]]
    done: Callable[[], Awaitable[None]]
    frozen: bool = False


class _Loop:
    """The loop of a projection's worker (``_Worker``), and its lag and progress reports."""

    if TYPE_CHECKING:
        runner: ProjectionRunner
        projection: Projection[Any]
        store: ReadStore[Any]
        state: ProjectionState
        checkpoint: Position | None
        events_behind: int
        seconds_behind: float
        last_error: str | None
        progress: RebuildProgress | None
        stopping: asyncio.Event
        resumed: asyncio.Event
        subscribers: list[asyncio.Queue[RebuildProgress]]
        _head_position: Position
        _head_at: float

        @property
        def name(self) -> str: ...

        def _recovered(self) -> None: ...

        async def _rebuild_requested(self) -> bool: ...

        async def _apply(
            self,
            projection: Projection[Any],
            events: Sequence[RecordedEvent],
            checkpoint: Position,
            switch: bool,
            *,
            end: Position | None = None,
            passed_over: int = 0,
        ) -> Position: ...

    # -- the loop --------------------------------------------------------------------

    async def _follow(
        self,
        projection: Projection[Any],
        lease: Lease,
        stop: asyncio.Event,
        plan: _Switch | None = None,
    ) -> None:
        """Catch ``projection`` up and keep it live; with ``plan``, rebuild and switch."""
        main = projection is self.projection
        event_store = self.runner.event_store
        checkpoint = await self.store.checkpoint(projection.name, projection.version)
        assert checkpoint is not None
        # A rebuild, or the first build of a projection, reports its progress.
        progress = _Progress(time.monotonic()) if plan or checkpoint == START else None
        if main and progress is not None:
            # Followers of progress() see a build under way before its first batch lands.
            self.progress = RebuildProgress(self.name, projection.version, 0, 0, 0.0, 0.0)
        if main:
            self.checkpoint = checkpoint
            self.state = ProjectionState.REBUILDING if plan else ProjectionState.CATCHING_UP
        reader = _Prefetcher(event_store, self.runner.batch_size, projection.handles)
        watch = _Watch(stop, lease)
        try:
            await self._loop(projection, plan, checkpoint, progress, reader, watch)
        finally:
            reader.cancel()
            watch.cancel()

    async def _loop(
        self,
        projection: Projection[Any],
        plan: _Switch | None,
        checkpoint: Position,
        progress: _Progress | None,
        reader: _Prefetcher,
        watch: _Watch,
    ) -> None:
        main = projection is self.projection
        arrived: EventPage | None = None  # what waiting live returned: the next batch
        while not watch.stop.is_set():
            if watch.lease.lost.is_set():
                raise _LeaseLost
            # Yield once per batch: with in-memory stores nothing else would, starving
            # every other task (other projections, queries) during a long catch-up. A
            # batch that arrived while waiting has yielded already.
            if arrived is None:
                await asyncio.sleep(0)
            if arrived is not None and arrived.scanned:
                page, arrived = arrived, None
            else:
                page = await reader.read(checkpoint)
            caught_up = page.scanned < self.runner.batch_size
            switch = plan is not None and caught_up
            if page.scanned or switch:
                try:
                    # Past the events of other types too: a reader waiting for a position
                    # made only of them (read-your-writes) sees this projection reach it.
                    checkpoint = await self._apply(
                        projection,
                        page,
                        checkpoint,
                        switch,
                        end=page.end,
                        passed_over=page.scanned - len(page),
                    )
                except _Stopping:
                    return
                except _Faulted as fault:
                    if not main:
                        log.error("%s v%d faulted: %s", projection.name, projection.version, fault)
                        return
                    # The status shows where it stopped: events of the batch before the
                    # failing one may have committed.
                    stored = await self.store.checkpoint(projection.name, projection.version)
                    assert stored is not None
                    checkpoint = self.checkpoint = stored
                    if not await self._fault(fault.error):
                        return
                    continue
            if not main:
                if caught_up:
                    waited = await self._next_events(checkpoint, projection, watch)
                    if waited is None:
                        return
                    arrived = waited
                continue
            if plan is not None and not switch and await self._may_switch(plan, checkpoint):
                # Under a steady write load batches may never come back short: switch once
                # near the head and past the (now frozen) version readers use.
                checkpoint = await self._apply(projection, [], checkpoint, True)
                switch = True
            self._recovered()
            self.checkpoint = checkpoint
            if progress is not None:
                built = switch or (plan is None and caught_up)
                await self._report(progress, page.scanned, checkpoint, finished=built)
                if built:
                    progress = None
            if switch:
                assert plan is not None
                done = plan.done
                plan, progress = None, None
                log.info("%s v%d is live", projection.name, projection.version)
                await done()
            await self._measure(page, checkpoint, caught_up)
            if caught_up and plan is None and await self._rebuild_requested():
                raise _RebuildRequested
            if caught_up:
                self.state = ProjectionState.LIVE
                waited = await self._next_events(checkpoint, projection, watch)
                if waited is None:
                    return
                if not waited.scanned and await self._vanished(projection):
                    raise _CheckpointVanished
                arrived = waited
            elif plan is None:
                self.state = ProjectionState.CATCHING_UP

    async def _vanished(self, projection: Projection[Any]) -> bool:
        """Whether the checkpoint is gone from the store (a flushed Redis): looked at on
        idle wake-ups, since without new events no commit would find out."""
        return await self.store.checkpoint(projection.name, projection.version) is None

    async def _may_switch(self, plan: _Switch, checkpoint: Position) -> bool:
        head = await self._head()
        if head.seq - checkpoint.seq > 2 * self.runner.batch_size:
            return False
        if not plan.frozen:
            await plan.freeze()
            plan.frozen = True
        if plan.live_version is None:
            return True
        live = await self.store.checkpoint(self.name, plan.live_version)
        return live is None or checkpoint >= live

    async def _next_events(
        self, after: Position, projection: Projection[Any], watch: _Watch
    ) -> EventPage | None:
        """The next batch once events (of any type) arrive, an empty page after
        ``idle_wait`` without any; ``None`` when asked to stop first. Raises
        :class:`_LeaseLost` if the lease went."""
        runner = self.runner
        reading = asyncio.create_task(
            runner.event_store.next_events(
                after, runner.batch_size, timeout=runner.idle_wait, types=projection.handles
            )
        )
        try:
            await asyncio.wait([reading, *watch.tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not reading.done():
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
        if watch.lease.lost.is_set():
            raise _LeaseLost
        if watch.stop.is_set():
            return None
        # Read errors surface here as they would from a read at the top of the loop.
        try:
            return reading.result()
        except Exception as exc:
            raise _StoreFailed("event store", exc) from exc

    async def _fault(self, error: str) -> bool:
        """Stay faulted until resumed (true) or stopped (false), keeping the lease."""
        self.state = ProjectionState.FAULTED
        self.last_error = error
        self.runner.metrics.faults.labels(self.name).inc()
        log.error("%s faulted: %s", self.name, error)
        self.resumed.clear()
        stop_task = asyncio.create_task(self.stopping.wait())
        resume_task = asyncio.create_task(self.resumed.wait())
        try:
            await asyncio.wait([stop_task, resume_task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_task.cancel()
            resume_task.cancel()
        if self.stopping.is_set():
            return False
        self.state = ProjectionState.CATCHING_UP
        return True

    # -- reporting ---------------------------------------------------------------------

    async def _head(self) -> Position:
        now = time.monotonic()
        if now - self._head_at > 0.5:
            try:
                self._head_position = await self.runner.event_store.head()
            except Exception as exc:
                raise _StoreFailed("event store", exc) from exc
            self._head_at = now
        return self._head_position

    async def _measure(
        self, events: Sequence[RecordedEvent], checkpoint: Position, caught_up: bool
    ) -> None:
        if caught_up:
            self.events_behind, self.seconds_behind = 0, 0.0
        else:
            head = await self._head()
            self.events_behind = max(0, head.seq - checkpoint.seq)
            # A batch of only other types' events keeps the last age measured.
            if events:
                newest = events[-1].recorded_at
                self.seconds_behind = max(0.0, (datetime.now(UTC) - newest).total_seconds())
        metrics = self.runner.metrics
        metrics.lag_events.labels(self.name).set(self.events_behind)
        metrics.lag_seconds.labels(self.name).set(self.seconds_behind)

    async def _report(
        self, progress: _Progress, done: int, checkpoint: Position, finished: bool
    ) -> None:
        progress.done += done
        head = await self._head()
        progress.total = progress.done + max(0, head.seq - checkpoint.seq)
        if finished:
            progress.total = progress.done
        elapsed = time.monotonic() - progress.started
        report = RebuildProgress(
            projection=self.name,
            version=self.projection.version,
            done=progress.done,
            total=progress.total,
            rate=progress.done / elapsed if elapsed > 0 else 0.0,
            elapsed=elapsed,
            finished=finished,
        )
        self.progress = report
        if self.runner.on_progress is not None:
            self.runner.on_progress(report)
        for queue in self.subscribers:
            queue.put_nowait(report)
