"""The projection runner: many projections, each caught up and then kept live independently.

Each projection runs in its own task. Once it holds its lease it catches up from its
checkpoint in batches, then waits for event-store notifications. Every batch is one
read-store transaction: the projection's writes plus the new checkpoint (and a parked
event, or the switch to a rebuilt version). Stopping lets the batch in flight finish;
cancelling rolls it back whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_client import CollectorRegistry

from cqrskit.consistency import WaitResult, wait_for
from cqrskit.errors import EventDecodeError
from cqrskit.projection.base import (
    Projection,
    ProjectionState,
    ProjectionStatus,
    RebuildProgress,
)
from cqrskit.projection.control import (
    REBUILD,
    REPORT,
    Lineage,
    at_version,
    encode_status,
)
from cqrskit.projection.leases import Lease, Leases, LocalLeases
from cqrskit.projection.metrics import ProjectionMetrics
from cqrskit.readstore.base import CheckpointConflict, ParkedEvent, ReadStore, no_parked_event
from cqrskit.store.base import START, EventStore, Position, RecordedEvent
from cqrskit.store.serialization import UndecodableEvent

__all__ = ["ProgressCallback", "ProjectionRunner"]

log = logging.getLogger("cqrskit.projection")

ProgressCallback = Callable[[RebuildProgress], None]


class _LeaseLost(Exception):
    pass


class _Stopping(Exception):
    pass


class _RebuildRequested(Exception):
    pass


class _Faulted(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class _StoreFailed(Exception):
    """A store could not be reached: the runner backs off and starts over from the
    checkpoint, without counting it against any event."""

    def __init__(self, store: str, error: Exception) -> None:
        super().__init__(store, error)
        self.store = store
        self.error = error


_OUTAGES: Final = frozenset(
    {
        "ConnectionError",  # redis.exceptions (the builtin one is an OSError)
        "TimeoutError",  # redis.exceptions
        "PostgresConnectionError",  # asyncpg: SQLSTATE class 08, connection lost or refused
        "CannotConnectNowError",  # asyncpg: 57P03, the server is starting up
        "AdminShutdownError",  # asyncpg: 57P01, the server is shutting down
        "CrashShutdownError",  # asyncpg: 57P02
        "TooManyConnectionsError",  # asyncpg: 53300
    }
)
"""Driver errors, by class name (the runner imports no driver), that mean "unreachable"."""


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says a store cannot be reached, rather than that an event is bad.

    Such a failure is not the event's: counting it as an attempt would park (or fault on)
    good events whenever a server restarts.
    """
    if isinstance(exc, _StoreFailed):
        return _unreachable(exc.error)
    if isinstance(exc, OSError):  # ConnectionRefusedError, TimeoutError, StoreUnavailable...
        return True
    return any(cls.__name__ in _OUTAGES for cls in type(exc).__mro__)


def _handles(projection: Projection[Any], recorded: RecordedEvent) -> bool:
    """``projection.handles_event``, also for an event that could not be decoded: by the
    class registered under its stored type, and for an unknown type, yes (whether the
    projection consumes it cannot be known, and it must not be skipped silently)."""
    event = recorded.event
    if type(event) is UndecodableEvent:
        return event.concerns(projection.handles)
    return projection.handles_event(recorded)


def _undecodable_at(projection: Projection[Any], events: Sequence[RecordedEvent]) -> int | None:
    """The index of the first event in ``events`` that ``projection`` would consume but
    that could not be decoded."""
    for index, recorded in enumerate(events):
        event = recorded.event
        if type(event) is UndecodableEvent and event.concerns(projection.handles):
            return index
    return None


def _raise_if_undecodable(recorded: RecordedEvent) -> None:
    event = recorded.event
    if type(event) is UndecodableEvent:
        raise event.error(recorded.stream_id, recorded.version, recorded.position)


def _describe(exc: BaseException, event: RecordedEvent) -> str:
    stored = event.event
    kind = stored.stored_type if isinstance(stored, UndecodableEvent) else stored.event_type
    # A decode error's own message names the event again; its reason is what is new.
    detail = exc.reason if isinstance(exc, EventDecodeError) else str(exc)
    return (
        f"{type(exc).__name__}: {detail} (event {kind} at {event.position}, "
        f"stream {event.stream_id!r} v{event.version})"
    )


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
    """

    def __init__(self, events: EventStore, batch_size: int) -> None:
        self._events = events
        self._batch_size = batch_size
        self._after: Position | None = None
        self._next: asyncio.Task[list[RecordedEvent]] | None = None

    async def read(self, after: Position) -> list[RecordedEvent]:
        try:
            if self._next is not None and self._after == after:
                task, self._next = self._next, None
                events = await task
            else:
                self.cancel()
                events = await self._events.read_all(after, self._batch_size)
        except Exception as exc:
            raise _StoreFailed("event store", exc) from exc
        if len(events) == self._batch_size:
            self._after = events[-1].position
            self._next = asyncio.create_task(self._events.read_all(self._after, self._batch_size))
        return events

    def cancel(self) -> None:
        if self._next is not None:
            if self._next.done() and not self._next.cancelled():
                self._next.exception()  # retrieved: a failed prefetch is simply dropped
            self._next.cancel()
            self._next = None


@dataclass
class _Switch:
    """A rebuild's way to the switch: freeze the old version, then clean it up."""

    live_version: int | None
    freeze: Callable[[], Awaitable[None]]
    done: Callable[[], Awaitable[None]]
    frozen: bool = False


@dataclass
class _Worker:
    runner: ProjectionRunner
    projection: Projection[Any]
    store: ReadStore[Any]
    previous: Projection[Any] | None
    state: ProjectionState = ProjectionState.STOPPED
    checkpoint: Position | None = None
    events_behind: int = 0
    seconds_behind: float = 0.0
    parked: int = 0
    last_error: str | None = None
    progress: RebuildProgress | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    resumed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    subscribers: list[asyncio.Queue[RebuildProgress]] = field(default_factory=list)
    _head_position: Position = field(default_factory=lambda: Position(0, 0))
    _head_at: float = 0.0
    _drops: set[asyncio.Task[None]] = field(default_factory=set)
    _failures: int = 0
    """Failures outside any event's handling since the projection last made progress."""
    _requests_checked: float = 0.0
    code: Projection[Any] | None = None
    """The projection as added; ``projection`` is it at the stored version in use."""
    previous_code: Projection[Any] | None = None

    @property
    def name(self) -> str:
        return self.projection.name

    def status(self) -> ProjectionStatus:
        return ProjectionStatus(
            name=self.name,
            version=self.projection.version,
            state=self.state,
            checkpoint=self.checkpoint,
            events_behind=self.events_behind,
            seconds_behind=self.seconds_behind,
            parked=self.parked,
            last_error=self.last_error,
            rebuild=self.progress,
        )

    # -- lifecycle -----------------------------------------------------------------

    async def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.state = ProjectionState.STANDBY
                lease = await self._acquire()
                if lease is None:
                    break
                failed, pause = False, 0.0
                try:
                    await self._active(lease)
                except _LeaseLost:
                    log.warning("%s: lease lost; standing by", self.name)
                except _RebuildRequested:
                    await self._plan_rebuild()
                except Exception as exc:
                    # The event store or read store failed outside any event's handling
                    # (connection lost, server restarting). Nothing was skipped: the
                    # checkpoint did not move. Start over from it after a pause.
                    pause = self._failed(exc)
                    failed = True
                finally:
                    await asyncio.shield(lease.release())
                if failed and await self._sleep(pause):
                    break
        finally:
            self.state = ProjectionState.STOPPED
            for task in list(self._drops):
                task.cancel()

    async def _acquire(self) -> Lease | None:
        while True:
            try:
                lease = await self.runner.leases.try_acquire(self.name)
            except Exception as exc:
                # The leases' database is down: stand by until it is back.
                if await self._sleep(self._failed(_StoreFailed("lease database", exc))):
                    return None
                continue
            if lease is not None:
                return lease
            if await self._sleep(self.runner.lease_retry):
                return None

    def _failed(self, exc: Exception) -> float:
        """Report a failure outside any event's handling; the pause before starting over.

        One WARNING line per attempt, naming the store, the error and the pause, which
        doubles with every failure in a row from ``error_pause`` up to
        ``max_error_pause``. The traceback is logged once per run of failures: at DEBUG
        for an outage, at ERROR for anything else (which may be a bug).
        """
        store, error = (exc.store, exc.error) if isinstance(exc, _StoreFailed) else ("", exc)
        outage = _unreachable(error)
        store = store or ("read store" if outage else "runner")
        runner = self.runner
        growth = float(2 ** min(self._failures, 32))
        pause = min(runner.error_pause * growth, runner.max_error_pause)
        self._failures += 1
        self.last_error = f"{type(error).__name__}: {error}"
        message = "%s: %s %s (%s); attempt %d, retrying in %.1f s"
        args = (self.name, store, "unreachable" if outage else "failed", self.last_error)
        if self._failures == 1 and not outage:
            log.error(message, *args, self._failures, pause, exc_info=error)
        else:
            log.warning(message, *args, self._failures, pause)
            if self._failures == 1:
                log.debug("%s: %s unreachable", self.name, store, exc_info=error)
        return pause

    def _recovered(self) -> None:
        if self._failures:
            log.info("%s: working again after %d failed attempt(s)", self.name, self._failures)
            self._failures = 0

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop first; true when stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _resolve_versions(self) -> None:
        """Pick the stored versions to run: the live one if this code built it, a
        version being rebuilt on request, or a new one for new code; and the live
        version to keep current meanwhile (``previous``)."""
        code = self.code
        if code is None:
            return
        store, name = self.store, self.name
        live = await store.live_version(name)
        lineage = await Lineage.load(store, name)
        target = code.version
        if live is not None:
            pending = lineage.pending
            if pending is not None and pending != live and lineage.code_of(pending) == target:
                target = pending
            elif lineage.code_of(live) == code.version:
                target = live
            elif lineage.code_of(code.version) != code.version:
                # That number holds a version a requested rebuild of other code made.
                target = await self._free_version(lineage, live)
                lineage.built_by[target] = code.version
                await lineage.save(store, name)
        self.projection = at_version(code, target)
        self.previous = None
        if live is not None and live != target:
            built = lineage.code_of(live)
            for candidate in (self.previous_code, code):
                if candidate is not None and candidate.version == built:
                    self.previous = at_version(candidate, live)
                    break

    async def _free_version(self, lineage: Lineage, live: int | None) -> int:
        assert self.code is not None
        version = max([live or 0, self.code.version, *lineage.built_by]) + 1
        while await self.store.checkpoint(self.name, version) is not None:
            version += 1
        return version

    async def _plan_rebuild(self) -> None:
        """Note a requested rebuild as pending: the next activation builds it."""
        assert self.code is not None
        lineage = await Lineage.load(self.store, self.name)
        live = await self.store.live_version(self.name)
        target = await self._free_version(lineage, live)
        lineage.built_by[target] = self.code.version
        lineage.pending = target
        await lineage.save(self.store, self.name)
        log.info("%s: rebuilding as v%d on request", self.name, target)

    async def _rebuild_requested(self) -> bool:
        """Whether an operator asked for a rebuild (looked at no more than once a second)."""
        now = time.monotonic()
        if now - self._requests_checked < self.runner.control_interval:
            return False
        self._requests_checked = now
        return await self.store.take_control(self.name, REBUILD) is not None

    async def _active(self, lease: Lease) -> None:
        await self._resolve_versions()
        projection, store = self.projection, self.store
        await store.prepare(projection, projection.setup)
        live = await store.live_version(self.name)
        side: asyncio.Task[None] | None = None
        side_stop = asyncio.Event()
        previous = self.previous
        if live != projection.version and previous is not None and previous.version == live:
            # Keep the version readers use current while the new one is built beside it.
            side = asyncio.create_task(self._follow(previous, lease, side_stop))
        self.parked = len(await store.parked_events(self.name, projection.version))
        self.runner.metrics.parked.labels(self.name).set(self.parked)

        async def freeze() -> None:
            side_stop.set()
            if side is not None:
                with contextlib.suppress(Exception):
                    await side

        async def switched() -> None:
            await freeze()
            if live is not None:
                self._drop_later(live)

        plan = None if live == projection.version else _Switch(live, freeze, switched)
        try:
            await self._follow(projection, lease, self.stopping, plan)
        finally:
            side_stop.set()
            if side is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await side

    def _drop_later(self, version: int) -> None:
        async def drop() -> None:
            # Readers that resolved the old tables just before the switch finish first.
            await asyncio.sleep(self.runner.drop_delay)
            try:
                await self.store.drop_version(self.name, version)
            except Exception:
                log.exception("%s: could not drop old version %d", self.name, version)

        task = asyncio.create_task(drop())
        self._drops.add(task)
        task.add_done_callback(self._drops.discard)

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
        reader = _Prefetcher(event_store, self.runner.batch_size)
        try:
            await self._loop(projection, lease, stop, plan, checkpoint, progress, reader)
        finally:
            reader.cancel()

    async def _loop(
        self,
        projection: Projection[Any],
        lease: Lease,
        stop: asyncio.Event,
        plan: _Switch | None,
        checkpoint: Position,
        progress: _Progress | None,
        reader: _Prefetcher,
    ) -> None:
        main = projection is self.projection
        arrived: list[RecordedEvent] = []  # what waiting live returned: the next batch
        while not stop.is_set():
            if lease.lost.is_set():
                raise _LeaseLost
            # Yield once per batch: with in-memory stores nothing else would, starving
            # every other task (other projections, queries) during a long catch-up.
            await asyncio.sleep(0)
            if arrived:
                events, arrived = arrived, []
            else:
                events = await reader.read(checkpoint)
            caught_up = len(events) < self.runner.batch_size
            switch = plan is not None and caught_up
            if events or switch:
                try:
                    checkpoint = await self._apply(projection, events, checkpoint, switch)
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
                    waited = await self._next_events(checkpoint, stop, lease)
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
                await self._report(progress, len(events), checkpoint, finished=built)
                if built:
                    progress = None
            if switch:
                assert plan is not None
                done = plan.done
                plan, progress = None, None
                log.info("%s v%d is live", projection.name, projection.version)
                await done()
            await self._measure(events, checkpoint, caught_up)
            if caught_up and plan is None and await self._rebuild_requested():
                raise _RebuildRequested
            if caught_up:
                self.state = ProjectionState.LIVE
                waited = await self._next_events(checkpoint, stop, lease)
                if waited is None:
                    return
                arrived = waited
            elif plan is None:
                self.state = ProjectionState.CATCHING_UP

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
        self, after: Position, stop: asyncio.Event, lease: Lease
    ) -> list[RecordedEvent] | None:
        """The next batch once events arrive (``[]`` after ``idle_wait`` without any);
        ``None`` when asked to stop first. Raises :class:`_LeaseLost` if the lease went."""
        runner = self.runner
        reading = asyncio.create_task(
            runner.event_store.next_events(after, runner.batch_size, timeout=runner.idle_wait)
        )
        waiters = [
            reading,
            asyncio.create_task(stop.wait()),
            asyncio.create_task(lease.lost.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if lease.lost.is_set():
            raise _LeaseLost
        if stop.is_set():
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

    # -- applying batches ------------------------------------------------------------

    async def _apply(
        self,
        projection: Projection[Any],
        events: Sequence[RecordedEvent],
        checkpoint: Position,
        switch: bool,
    ) -> Position:
        # An event the projection would consume but that could not be decoded fails on
        # its own, like an event its handler fails on; the events before and after it go
        # on in batches.
        while (bad := _undecodable_at(projection, events)) is not None:
            if bad:
                checkpoint = await self._apply(projection, events[:bad], checkpoint, False)
            checkpoint = await self._apply_single(projection, events[bad], checkpoint)
            events = events[bad + 1 :]
            if not events and not switch:
                return checkpoint
        handled = [
            e
            for e in events
            if projection.handles_event(e) and type(e.event) is not UndecodableEvent
        ]
        started = time.perf_counter()
        try:
            async with self.store.transaction(projection, checkpoint) as tx:
                if handled:
                    await projection.handle(handled, tx.uow)
                if events:
                    tx.advance_to(events[-1].position)
                if switch:
                    tx.go_live()
        except CheckpointConflict as exc:
            raise _LeaseLost from exc
        except Exception as exc:
            if _unreachable(exc):
                raise _StoreFailed("read store", exc) from exc
            log.warning(
                "%s v%d: batch failed (%s); retrying its events one by one",
                projection.name,
                projection.version,
                exc,
            )
            return await self._apply_one_by_one(projection, events, checkpoint, switch)
        self._count(projection, len(events), time.perf_counter() - started)
        return events[-1].position if events else checkpoint

    def _count(self, projection: Projection[Any], events: int, seconds: float) -> None:
        metrics = self.runner.metrics
        metrics.events_processed.labels(projection.name).inc(events)
        metrics.batch_seconds.labels(projection.name).observe(seconds)

    async def _apply_one_by_one(
        self,
        projection: Projection[Any],
        events: Sequence[RecordedEvent],
        checkpoint: Position,
        switch: bool,
    ) -> Position:
        for event in events:
            if _handles(projection, event):
                checkpoint = await self._apply_single(projection, event, checkpoint)
        if (events and checkpoint != events[-1].position) or switch:
            # Events after the last handled one (or the switch) still need committing.
            async with self.store.transaction(projection, checkpoint) as tx:
                if events:
                    tx.advance_to(events[-1].position)
                if switch:
                    tx.go_live()
            checkpoint = events[-1].position if events else checkpoint
        return checkpoint

    async def _apply_single(
        self, projection: Projection[Any], event: RecordedEvent, checkpoint: Position
    ) -> Position:
        policy = projection.failure_policy
        error = ""
        for attempt in range(policy.retries + 1):
            started = time.perf_counter()
            try:
                _raise_if_undecodable(event)
                async with self.store.transaction(projection, checkpoint) as tx:
                    await projection.handle([event], tx.uow)
                    tx.advance_to(event.position)
            except CheckpointConflict as exc:
                raise _LeaseLost from exc
            except Exception as exc:
                if _unreachable(exc):
                    # Not this event's fault: start over from the checkpoint once the
                    # store is back, rather than park or fault on a good event.
                    raise _StoreFailed("read store", exc) from exc
                error = _describe(exc, event)
                if projection is self.projection:
                    self.last_error = error
                log.warning(
                    "%s v%d attempt %d/%d failed: %s",
                    projection.name,
                    projection.version,
                    attempt + 1,
                    policy.retries + 1,
                    error,
                )
                if attempt < policy.retries and await self._sleep(policy.delay(attempt)):
                    raise _Stopping from exc
                continue
            self._count(projection, 1, time.perf_counter() - started)
            return event.position
        if policy.then == "park":
            try:
                async with self.store.transaction(projection, checkpoint) as tx:
                    tx.park(event, error, policy.retries + 1)
                    tx.advance_to(event.position)
            except CheckpointConflict as exc:
                raise _LeaseLost from exc
            log.error("%s v%d parked an event: %s", projection.name, projection.version, error)
            if projection is self.projection:
                self.parked += 1
                self.runner.metrics.parked.labels(self.name).set(self.parked)
            return event.position
        raise _Faulted(error)

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


_ACTIVE = frozenset(
    {
        ProjectionState.CATCHING_UP,
        ProjectionState.LIVE,
        ProjectionState.REBUILDING,
        ProjectionState.FAULTED,
    }
)
"""States in which a runner holds a projection's lease and publishes its status."""


class ProjectionRunner:
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
                version = worker.projection.version
                worker.parked = len(await worker.store.parked_events(worker.name, version))
                self.metrics.parked.labels(worker.name).set(worker.parked)
                if worker.parked == 0 and worker.state is ProjectionState.LIVE:
                    worker.last_error = None  # nothing failing is left behind
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

    # -- parked events ---------------------------------------------------------------------

    async def _current(self, name: str) -> _Worker:
        """The worker of ``name``, at the stored version in use even before it ran here
        (in a runner that is not started, e.g. an operator's tool beside the service)."""
        worker = self._worker(name)
        if worker.state not in _ACTIVE:
            await worker._resolve_versions()
        return worker

    async def parked(self, name: str) -> list[ParkedEvent]:
        """Events parked by the projection's current version."""
        worker = await self._current(name)
        return await worker.store.parked_events(name, worker.projection.version)

    async def _parked_entry(self, worker: _Worker, parked_id: str) -> ParkedEvent:
        version = worker.projection.version
        for entry in await worker.store.parked_events(worker.name, version):
            if entry.id == parked_id:
                return entry
        raise no_parked_event(worker.name, version, parked_id)

    async def retry_parked(self, name: str, parked_id: str) -> None:
        """Handle a parked event again (after fixing the cause) and unpark it on success.

        The event is read again from the event store and decoded with today's registry,
        so an event parked because it could not be decoded is applied once its type is
        registered again or an upcaster fixes it (and only unparked if, decoded, it turns
        out to be an event the projection does not consume). The event's effects and its
        removal from the parked list commit together; if it fails again (still
        undecodable: :class:`~cqrskit.errors.EventDecodeError`), the error propagates and
        it stays parked, with that error and one more attempt recorded. Parked events are
        handled out of their original order, so their effects must not depend on it.

        Raises :class:`LookupError` if ``parked_id`` is not parked, also when a concurrent
        retry or discard of the same event committed first: then nothing is applied.
        """
        worker = await self._current(name)
        projection = worker.projection
        entry = await self._parked_entry(worker, parked_id)
        event = await self._parked_source(entry)
        handled = False
        try:
            _raise_if_undecodable(event)
            async with worker.store.transaction(projection, None) as tx:
                if _handles(projection, event):
                    await projection.handle([event], tx.uow)
                handled = True
                tx.unpark(parked_id)
        except Exception as exc:
            # A lost race to unpark (LookupError at commit) leaves the entry to the winner.
            if not (handled and isinstance(exc, LookupError)):
                await self._record_retry_failure(worker, entry, _describe(exc, event))
            raise
        worker.parked = max(0, worker.parked - 1)
        self.metrics.parked.labels(name).set(worker.parked)

    async def _parked_source(self, entry: ParkedEvent) -> RecordedEvent:
        """The parked event as the event store holds it now (undecodable or not)."""
        # Nothing sorts between (commit, seq - 1) and (commit, seq): the first event after
        # it is this one, if it is still there. read_all, unlike read_stream, hands over
        # an event it cannot decode instead of raising, and reads only this one.
        position = entry.position
        found = await self.event_store.read_all(Position(position.commit, position.seq - 1), 1)
        if not found or found[0].position != position:
            raise LookupError(
                f"{entry.projection}: parked event {entry.id!r} is gone from the event store"
            )
        return found[0]

    async def _record_retry_failure(self, worker: _Worker, entry: ParkedEvent, error: str) -> None:
        try:
            async with worker.store.transaction(worker.projection, None) as tx:
                tx.record_failure(entry, error)
        except Exception as exc:
            # The retry's own error matters more, and it propagates regardless.
            log.warning(
                "%s: could not record the failed retry of %s: %r", worker.name, entry.id, exc
            )

    async def discard_parked(self, name: str, parked_id: str) -> None:
        """Drop a parked event for good, without handling it.

        Raises :class:`LookupError` if ``parked_id`` is not parked (unknown, malformed, or
        already retried or discarded, also by a concurrent call that committed first).
        """
        worker = await self._current(name)
        await self._parked_entry(worker, parked_id)
        async with worker.store.transaction(worker.projection, None) as tx:
            tx.unpark(parked_id)
        worker.parked = max(0, worker.parked - 1)
        self.metrics.parked.labels(name).set(worker.parked)
