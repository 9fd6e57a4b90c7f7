"""One projection's worker in the runner: its state and status, its lease, the stored
versions it runs (a rebuild beside the live one), and starting over after failures.

The loop is in :mod:`cqrskit.projection._loop`, applying batches in
:mod:`cqrskit.projection._batches`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cqrskit.projection._batches import _BatchApplier
from cqrskit.projection._failures import (
    _CheckpointVanished,
    _LeaseLost,
    _RebuildRequested,
    _StoreFailed,
    _unreachable,
)
from cqrskit.projection._loop import _Loop, _Switch
from cqrskit.projection.base import Projection, ProjectionState, ProjectionStatus, RebuildProgress
from cqrskit.projection.control import REBUILD, Lineage, at_version
from cqrskit.projection.leases import Lease
from cqrskit.readstore.base import ReadStore
from cqrskit.store.base import Position

if TYPE_CHECKING:
    from cqrskit.projection.runner import ProjectionRunner

log = logging.getLogger("cqrskit.projection")


@dataclass
class _Worker(_Loop, _BatchApplier):
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
                except _CheckpointVanished:
                    try:
                        await self._forget_vanished()
                    except Exception as exc:
                        pause = self._failed(exc)
                        failed = True
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

    async def _forget_vanished(self) -> None:
        """The checkpoint is gone: the next activation prepares the version again and
        builds it from the first event."""
        name, version = self.name, self.projection.version
        log.warning(
            "%s v%d: its checkpoint vanished from the read store (flushed, or restored "
            "from an older backup?); building it again from the first event",
            name,
            version,
        )
        if await self.store.live_version(name) != version:
            # Whatever is left of the version (keys a partial flush missed) would be
            # counted twice by the rebuild: start from nothing.
            await self.store.drop_version(name, version)

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
        self.parked = await store.parked_count(self.name, projection.version)
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


_ACTIVE = frozenset(
    {
        ProjectionState.CATCHING_UP,
        ProjectionState.LIVE,
        ProjectionState.REBUILDING,
        ProjectionState.FAULTED,
    }
)
"""States in which a runner holds a projection's lease and publishes its status."""
