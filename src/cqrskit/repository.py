"""Loading and saving aggregates, and the unit of work a command handler runs in."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import TypeVar

from cqrskit._fingerprint import check_fingerprint, encode_result_id
from cqrskit._state_cache import StateCache
from cqrskit.aggregate import Aggregate
from cqrskit.errors import AggregateNotFound, ConcurrencyError, UnexpectedVersion
from cqrskit.messages import Message
from cqrskit.store.base import (
    NO_STREAM,
    AppendResult,
    EventStore,
    Idempotency,
    Snapshot,
    StreamAppend,
)

__all__ = ["Repository", "UnitOfWork"]

A = TypeVar("A", bound=Aggregate)

log = logging.getLogger("cqrskit.repository")


class Repository:
    """Loads aggregates from their streams and appends their new events.

    ``snapshot_every`` maps aggregate types to N: after a save crosses a multiple of N
    events, a snapshot is stored, and loading starts from the latest one. Snapshots are a
    cache: a missing or outdated one only costs a longer replay.

    The repository also keeps the states of the last ``cache_size`` aggregates of those
    types that it loaded or saved, in memory: loading one of them again starts from its
    kept state and reads only the events after it (usually none), instead of a stored
    snapshot and its tail. The tail is always read, so loads stay exact whatever other
    processes append; a save that fails forgets what was kept of its streams. ``0``
    turns it off.

    ``one_writer_at_a_time`` names aggregate types that many commands change at once (a
    popular product): within this process, a unit of work that loads one waits until the
    unit of work holding it has committed or failed, instead of loading the same version,
    losing the race at append and going round :class:`~cqrskit.middleware.RetryOnConflict`
    again and again. Across processes, optimistic concurrency still decides. A unit of work
    that would wait in a cycle (it holds what the holder is waiting for) raises
    :class:`~cqrskit.errors.ConcurrencyError` at once, to be retried; handlers that load
    such aggregates in a fixed order (sorted ids) never meet one. A unit of work waits at
    most ``queue_timeout`` seconds, then goes ahead unqueued (optimistic concurrency
    decides, as without the option): a holder stuck on an unreachable store must not add
    its wait to the waits of everyone queued behind it.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        snapshot_every: Mapping[type[Aggregate], int] | None = None,
        one_writer_at_a_time: Iterable[type[Aggregate]] = (),
        queue_timeout: float = 0.5,
        cache_size: int = 1000,
    ) -> None:
        self.store = store
        self._cache = StateCache(cache_size)
        self._locked_types = frozenset(one_writer_at_a_time)
        self._locks = _StreamLocks(queue_timeout)
        self._snapshot_every = dict(snapshot_every or {})
        for cls, every in self._snapshot_every.items():
            if every < 1:
                raise ValueError(f"snapshot_every for {cls.__qualname__} must be >= 1")
            if not cls.supports_snapshots():
                raise TypeError(
                    f"{cls.__qualname__} must override snapshot_state and restore_state "
                    "to be snapshotted"
                )

    async def load(self, cls: type[A], id: str) -> A:
        """The aggregate ``id`` of type ``cls``; :class:`AggregateNotFound` if it has no stream."""
        aggregate = await self.find(cls, id)
        if aggregate is None:
            raise AggregateNotFound(cls.category, id)
        return aggregate

    async def find(self, cls: type[A], id: str) -> A | None:
        """Like :meth:`load`, but ``None`` when the aggregate does not exist."""
        stream_id = cls.stream_id_for(id)
        aggregate = cls(id)
        snapshotted = cls in self._snapshot_every
        kept = snapshotted and self._cache.restore(aggregate)
        if snapshotted and not kept:
            snapshot = await self.store.load_snapshot(stream_id)
            if (
                snapshot is not None
                and snapshot.aggregate_type == cls.category
                and snapshot.schema_version == cls.snapshot_schema
            ):
                aggregate.restore_state(dict(snapshot.state))
                aggregate.version = snapshot.version
        events = await self.store.read_stream(stream_id, aggregate.version + 1)
        aggregate.replay(e.event for e in events)
        if aggregate.version == 0:
            return None
        if snapshotted and (events or not kept):
            self._keep(aggregate)
        return aggregate

    async def save(
        self,
        *aggregates: Aggregate,
        cause: Message | None = None,
        idempotency: Idempotency | None = None,
    ) -> AppendResult:
        """Append the pending events of ``aggregates`` in one atomic append.

        Each stream is guarded by the version the aggregate was loaded at. Events take
        their correlation and causation from ``cause`` (the command being handled).
        """
        appends: list[StreamAppend] = []
        saved: list[tuple[Aggregate, int]] = []
        for aggregate in aggregates:
            before = aggregate.persisted_version
            events = aggregate.collect_events()
            if not events:
                continue
            if cause is not None:
                events = [e.with_metadata(cause.metadata.caused(e.metadata)) for e in events]
            expected = before if before > 0 else NO_STREAM
            appends.append(StreamAppend(aggregate.stream_id, events, expected))
            saved.append((aggregate, before))
        try:
            result = await self.store.append_many(appends, idempotency=idempotency)
        except BaseException:
            # Lost a race, or an outcome not known: what is kept of these streams may be
            # behind or (had an earlier save been misjudged) ahead; the next load reads.
            for aggregate, _ in saved:
                self._cache.forget(aggregate.stream_id)
            raise
        if not result.replayed:
            for aggregate, before in saved:
                if type(aggregate) in self._snapshot_every:
                    self._keep(aggregate)
                await self._maybe_snapshot(aggregate, before)
        return result

    def _keep(self, aggregate: Aggregate) -> None:
        try:
            self._cache.keep(aggregate)
        except Exception:
            # After a committed save the command has succeeded: a state that cannot be
            # kept only means the next load reads from the store.
            self._cache.forget(aggregate.stream_id)
            log.warning("could not keep the state of %s", aggregate.stream_id, exc_info=True)

    async def _maybe_snapshot(self, aggregate: Aggregate, before: int) -> None:
        every = self._snapshot_every.get(type(aggregate))
        if every is None or aggregate.version // every == before // every:
            return
        snapshot = Snapshot(
            aggregate.stream_id,
            aggregate.version,
            aggregate.category,
            aggregate.snapshot_schema,
            aggregate.snapshot_state(),
        )
        try:
            await self.store.save_snapshot(snapshot)
        except Exception:
            # The events are committed; a missing snapshot only makes later loads longer.
            log.warning("could not save snapshot of %s", aggregate.stream_id, exc_info=True)


class UnitOfWork:
    """What one command handler works with: the aggregates it loads or creates.

    The bus commits the unit of work after the handler returns: every aggregate with new
    events is saved in one atomic append, recorded under the command's id. Then (or when
    the handler fails) it closes it, which lets the next unit of work load the aggregates
    of the repository's ``one_writer_at_a_time`` types that this one held; a unit of work
    made by hand must be closed the same way (:meth:`close`, or ``async with``).
    """

    def __init__(self, repository: Repository, command: Message) -> None:
        self.repository = repository
        self.command = command
        self._tracked: dict[str, Aggregate] = {}
        self._held: list[str] = []

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Let other units of work load the aggregates this one held (see
        ``Repository(one_writer_at_a_time=...)``); idempotent."""
        held, self._held = self._held, []
        self.repository._locks.release(self, held)

    async def load(self, cls: type[A], id: str, *, expected_version: int | None = None) -> A:
        """Load an aggregate and track it for the commit.

        With ``expected_version`` (e.g. from HTTP ``If-Match``), raise
        :class:`UnexpectedVersion` unless the aggregate is at exactly that version.
        """
        await self._hold(cls, id)
        aggregate = await self.repository.load(cls, id)
        _check_version(cls, id, aggregate, expected_version)
        return self._track(aggregate)

    async def find(self, cls: type[A], id: str, *, expected_version: int | None = None) -> A | None:
        """Load an aggregate if it exists and track it for the commit.

        ``expected_version`` as in :meth:`load`; a missing aggregate is at version 0.
        """
        await self._hold(cls, id)
        aggregate = await self.repository.find(cls, id)
        _check_version(cls, id, aggregate, expected_version)
        return None if aggregate is None else self._track(aggregate)

    async def load_many(self, cls: type[A], ids: Iterable[str]) -> dict[str, A]:
        """Load several aggregates of one type and track them, by id: like :meth:`load`
        for each, but their reads run concurrently (an order's products: one round trip's
        wait instead of one per product, while the first product is held).

        Aggregates of a ``one_writer_at_a_time`` type are held one by one in sorted id
        order before any is read, so two units of work never wait for each other. Every
        read is waited for; then the first failure in sorted order is raised (what loading
        them one by one would have raised), e.g. :class:`AggregateNotFound`.
        """
        ordered = sorted(set(ids))
        for id in ordered:
            await self._hold(cls, id)
        loaded = await asyncio.gather(
            *(self.repository.load(cls, id) for id in ordered), return_exceptions=True
        )
        aggregates: dict[str, A] = {}
        for id, outcome in zip(ordered, loaded, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome
            aggregates[id] = self._track(outcome)
        return aggregates

    def add(self, aggregate: A) -> A:
        """Track a newly created aggregate for the commit."""
        return self._track(aggregate)

    async def _hold(self, cls: type[Aggregate], id: str) -> None:
        if cls not in self.repository._locked_types:
            return
        stream_id = cls.stream_id_for(id)
        if stream_id not in self._held and await self.repository._locks.acquire(self, stream_id):
            self._held.append(stream_id)

    def _track(self, aggregate: A) -> A:
        known = self._tracked.get(aggregate.stream_id)
        if known is not None and known is not aggregate:
            raise ValueError(f"{aggregate.stream_id} is already part of this unit of work")
        self._tracked[aggregate.stream_id] = aggregate
        return aggregate

    async def commit(
        self,
        result_id: str,
        idempotency_key: str | None = None,
        *,
        fingerprint: str | None = None,
    ) -> AppendResult:
        """Save every tracked aggregate's new events in one append.

        With ``idempotency_key`` the append is recorded under it together with
        ``result_id`` and the command's ``fingerprint``, so a repeat of the command can
        return the first result. When a concurrent command with the same key won the race,
        the store replays its result: if that was a different command (another
        fingerprint), :class:`~cqrskit.errors.IdempotencyKeyReused` is raised. The result's
        ``result_id`` is always the plain id.
        """
        result = await self.repository.save(
            *self._tracked.values(),
            cause=self.command,
            idempotency=None
            if idempotency_key is None
            else Idempotency(idempotency_key, encode_result_id(result_id, fingerprint)),
        )
        if idempotency_key is None:
            return result
        plain = check_fingerprint(result.result_id, fingerprint, idempotency_key)
        return dataclasses.replace(result, result_id=plain)


def _check_version(cls: type[A], id: str, aggregate: A | None, expected: int | None) -> None:
    actual = 0 if aggregate is None else aggregate.version
    if expected is not None and actual != expected:
        raise UnexpectedVersion(cls.category, id, expected, actual)


class _WaitCycle(ConcurrencyError):
    """A unit of work would wait for a stream whose holder waits for one it holds."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.expected = self.actual = -1
        Exception.__init__(
            self,
            f"stream {stream_id!r} is held by a command that waits for a stream this one "
            "holds; try again",
        )


class _StreamLocks:
    """Per-stream locks of one repository, in one process: who holds each stream, who
    waits for it, and what each waiting unit of work waits for (to refuse a cycle)."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._holders: dict[str, UnitOfWork] = {}
        self._waiters: dict[str, list[tuple[UnitOfWork, asyncio.Future[None]]]] = {}
        self._waiting_for: dict[UnitOfWork, str] = {}

    async def acquire(self, uow: UnitOfWork, stream_id: str) -> bool:
        """Hold ``stream_id`` for ``uow``: true once it does, false when the wait timed out."""
        holder = self._holders.get(stream_id)
        if holder is None:
            self._holders[stream_id] = uow
            return True
        if self._would_deadlock(uow, holder):
            # Retried by RetryOnConflict like any lost race; this unit of work then lets go
            # of what it holds, so the cycle is broken.
            raise _WaitCycle(stream_id)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(stream_id, []).append((uow, future))
        self._waiting_for[uow] = stream_id
        try:
            # release() hands the stream over by resolving the future: then it is ours.
            await asyncio.wait({future}, timeout=self._timeout)
        except BaseException:
            if future.done() and not future.cancelled():
                self.release(uow, [stream_id])  # handed over as we were cancelled
            else:
                self._leave_queue(stream_id, future)
            raise
        finally:
            self._waiting_for.pop(uow, None)
        if future.done():
            return True
        self._leave_queue(stream_id, future)
        future.cancel()
        return False

    def _leave_queue(self, stream_id: str, future: asyncio.Future[None]) -> None:
        queue = self._waiters.get(stream_id, [])
        queue[:] = [(u, f) for u, f in queue if f is not future]

    def release(self, uow: UnitOfWork, stream_ids: list[str]) -> None:
        for stream_id in stream_ids:
            if self._holders.get(stream_id) is not uow:
                continue
            queue = self._waiters.get(stream_id)
            while queue:
                waiter, future = queue.pop(0)
                if not future.done():
                    self._holders[stream_id] = waiter
                    future.set_result(None)
                    break
            else:
                del self._holders[stream_id]
                self._waiters.pop(stream_id, None)

    def _would_deadlock(self, uow: UnitOfWork, holder: UnitOfWork) -> bool:
        """Whether ``holder`` waits, directly or down a chain, for a stream ``uow`` holds."""
        seen: set[int] = set()
        current: UnitOfWork | None = holder
        while current is not None and id(current) not in seen:
            if current is uow:
                return True
            seen.add(id(current))
            waited = self._waiting_for.get(current)
            current = None if waited is None else self._holders.get(waited)
        return False
