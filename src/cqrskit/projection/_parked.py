"""Operations on a projection's parked events: list them, retry one, discard one."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cqrskit.projection._failures import _describe, _handles, _raise_if_undecodable
from cqrskit.projection._worker import _ACTIVE, _Worker
from cqrskit.readstore.base import ParkedEvent, no_parked_event
from cqrskit.store.base import EventStore, Position, RecordedEvent

if TYPE_CHECKING:
    from cqrskit.projection.metrics import ProjectionMetrics

log = logging.getLogger("cqrskit.projection")


class _ParkedEvents:
    """The parked-event operations of :class:`~cqrskit.projection.runner.ProjectionRunner`."""

    if TYPE_CHECKING:
        event_store: EventStore
        metrics: ProjectionMetrics

        def _worker(self, name: str) -> _Worker: ...

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
        async with worker.store.transaction(worker.projection, None) as tx:
            tx.unpark(parked_id)  # a guard: LookupError unless it is parked
        worker.parked = max(0, worker.parked - 1)
        self.metrics.parked.labels(name).set(worker.parked)
