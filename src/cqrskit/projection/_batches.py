"""How a projection worker applies a batch of events: in one transaction, else one by
one, each failing event retried and then parked or faulted on by the projection's policy."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cqrskit.projection._failures import (
    _conflict,
    _describe,
    _Faulted,
    _handles,
    _raise_if_undecodable,
    _Stopping,
    _StoreFailed,
    _undecodable_at,
    _unreachable,
)
from cqrskit.projection.base import Projection
from cqrskit.readstore.base import CheckpointConflict, ReadStore
from cqrskit.store.base import Position, RecordedEvent
from cqrskit.store.serialization import UndecodableEvent

if TYPE_CHECKING:
    from cqrskit.projection.runner import ProjectionRunner

log = logging.getLogger("cqrskit.projection")


class _BatchApplier:
    """The applying-batches part of a projection's worker (``_Worker``)."""

    if TYPE_CHECKING:
        runner: ProjectionRunner
        projection: Projection[Any]
        store: ReadStore[Any]
        parked: int
        last_error: str | None

        @property
        def name(self) -> str: ...

        async def _sleep(self, seconds: float) -> bool: ...

    # -- applying batches ------------------------------------------------------------

    async def _apply(
        self,
        projection: Projection[Any],
        events: Sequence[RecordedEvent],
        checkpoint: Position,
        switch: bool,
        *,
        end: Position | None = None,
        passed_over: int = 0,
    ) -> Position:
        """Apply ``events`` after ``checkpoint`` and commit the checkpoint at ``end`` (the
        last event's position by default): where the read that found them reached, past
        the ``passed_over`` events of types the projection does not handle."""
        if end is None:
            end = events[-1].position if events else checkpoint
        # An event the projection would consume but that could not be decoded fails on
        # its own, like an event its handler fails on; the events before and after it go
        # on in batches.
        while (bad := _undecodable_at(projection, events)) is not None:
            if bad:
                checkpoint = await self._apply(projection, events[:bad], checkpoint, False)
            checkpoint = await self._apply_single(projection, events[bad], checkpoint)
            events = events[bad + 1 :]
            if not events and not switch and checkpoint == end:
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
                if end != checkpoint:
                    tx.advance_to(end)
                if switch:
                    tx.go_live()
        except CheckpointConflict as exc:
            raise _conflict(exc) from exc
        except Exception as exc:
            if _unreachable(exc):
                raise _StoreFailed("read store", exc) from exc
            log.warning(
                "%s v%d: batch failed (%s); retrying its events one by one",
                projection.name,
                projection.version,
                exc,
            )
            checkpoint = await self._apply_one_by_one(projection, events, checkpoint, switch, end)
            # Its events were counted one by one; those passed over are counted here.
            self.runner.metrics.events_processed.labels(projection.name).inc(passed_over)
            return checkpoint
        self._count(projection, len(events) + passed_over, time.perf_counter() - started)
        return end

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
        end: Position,
    ) -> Position:
        for event in events:
            if _handles(projection, event):
                checkpoint = await self._apply_single(projection, event, checkpoint)
        if checkpoint != end or switch:
            # Events after the last handled one (or the switch) still need committing.
            async with self.store.transaction(projection, checkpoint) as tx:
                if checkpoint != end:
                    tx.advance_to(end)
                if switch:
                    tx.go_live()
            checkpoint = end
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
                raise _conflict(exc) from exc
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
                raise _conflict(exc) from exc
            log.error("%s v%d parked an event: %s", projection.name, projection.version, error)
            if projection is self.projection:
                self.parked += 1
                self.runner.metrics.parked.labels(self.name).set(self.parked)
            return event.position
        raise _Faulted(error)
