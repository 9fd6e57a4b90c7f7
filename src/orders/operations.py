"""What operators do to a running service: check projections, handle parked events, read
event streams, follow the event feed, rebuild a read model.

Shared by the ``orders`` CLI and an admin page: everything here answers in plain data
(no printing) and raises :class:`OperationError` for what the caller asked wrongly. It
works beside a running service, from another process: it opens the same stores from the
same settings, never starts a projection runner, and changes read models only through
the framework's own parked-event transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from cqrskit import EventStore, ProjectionRunner, ReadStore
from cqrskit.projection import PublishedStatus, published_statuses
from cqrskit.projection import request_rebuild as ask_for_rebuild
from cqrskit.readstore.base import ParkedEvent
from cqrskit.store.base import START, Position, RecordedEvent
from cqrskit.store.serialization import UndecodableEvent
from orders.bootstrap import Services, open_services
from orders.domain.events import ALL_EVENTS
from orders.settings import Settings

__all__ = [
    "BEHIND_CAP",
    "EVENT_TYPES",
    "REPORT_STALE_AFTER",
    "OperationError",
    "ProjectionHealth",
    "RebuildStep",
    "RetryOutcome",
    "describe_event",
    "discard_parked",
    "event_type_of",
    "follow_events",
    "latest_events",
    "open_stores",
    "parked_events",
    "projection_health",
    "published_reports",
    "report_age",
    "request_rebuild",
    "retry_parked",
    "stream_events",
    "watch_rebuild",
    "with_report",
]

log = logging.getLogger("orders.operations")

REPORT_STALE_AFTER: Final = 10.0
"""Seconds after which a runner's published status may no longer be true (the runner
publishes more often than that while it runs)."""

BEHIND_CAP: Final = 100_000
"""Counting the events a projection has still to handle stops here ("100000+")."""

_PAGE: Final = 5_000

EVENT_TYPES: Final = tuple(sorted(e.event_type for e in ALL_EVENTS))
"""The event type names the service writes."""


class OperationError(Exception):
    """The operation cannot be done as asked (an unknown projection, parked id or stream,
    or a runner that lacks a feature); the message says why, for a person."""


@contextlib.asynccontextmanager
async def open_stores(settings: Settings) -> AsyncIterator[Services]:
    """The running service's stores, opened from its settings, without a runner.

    On the embedded default a missing event file means the service never ran here (or
    ORDERS_DATA_DIR points elsewhere): say so rather than create an empty store.
    """
    if settings.event_store_url is None and not (settings.data_dir / "events.db").exists():
        raise OperationError(
            f"no service data in {settings.data_dir} (set ORDERS_DATA_DIR, or the store "
            "URLs, as the service has them)"
        )
    async with open_services(settings, run_projections=False) as services:
        yield services


def _store_of(services: Services, name: str) -> ReadStore[Any]:
    try:
        return services.read_stores[name]
    except KeyError:
        known = ", ".join(services.read_stores)
        raise OperationError(f"no projection {name!r} (there are: {known})") from None


# -- projection health ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectionHealth:
    """One projection as its stores show it, and as its runner last said it was.

    ``version``, ``checkpoint``, the lag and ``parked`` are read from the stores now;
    ``state``, ``last_error``, ``holder`` and ``rebuild`` only a runner knows: they come
    from the status it publishes (``report_age`` seconds ago), "unknown" without one
    (no runner has held the projection since its store was created).
    """

    name: str
    version: int | None
    checkpoint: str | None
    events_behind: int | None
    """Events after the checkpoint (at most :data:`BEHIND_CAP`, see ``behind_capped``)."""
    behind_capped: bool
    seconds_behind: float | None
    """Age of the oldest event not projected yet; 0 when caught up."""
    parked: int
    state: str = "unknown"
    last_error: str | None = None
    holder: str | None = None
    report_age: float | None = None
    rebuild: Mapping[str, Any] | None = None

    @property
    def stale(self) -> bool:
        """Whether the runner's last status is too old to trust (the runner may be gone)."""
        return self.report_age is not None and self.report_age > REPORT_STALE_AFTER

    @property
    def faulted(self) -> bool:
        """Whether the runner stopped this projection on a failing event."""
        return self.state == "faulted"

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready mapping, with ``stale`` and ``faulted`` spelled out."""
        return {**asdict(self), "stale": self.stale, "faulted": self.faulted}


async def published_reports(services: Services) -> dict[str, dict[str, Any]]:
    """Each projection's status as the runner holding it last published it, by name.

    As JSON-ready mappings (``state``, ``version``, ``checkpoint``, ``events_behind``,
    ``seconds_behind``, ``parked``, ``last_error``, ``holder``, ``updated_at`` as ISO
    text, ``rebuild``), the form :func:`with_report` merges and an admin page can send.
    A report is taken only from the store that holds its projection.
    """
    reports: dict[str, dict[str, Any]] = {}
    seen: set[int] = set()
    for store in services.read_stores.values():
        if id(store) in seen:
            continue
        seen.add(id(store))
        for name, status in (await published_statuses(store)).items():
            if services.read_stores.get(name) is store:
                reports[name] = _report_json(status)
    return reports


def _report_json(status: PublishedStatus) -> dict[str, Any]:
    rebuild = status.rebuild
    return {
        "state": status.state.value,
        "version": status.version,
        "checkpoint": status.checkpoint,
        "events_behind": status.events_behind,
        "seconds_behind": status.seconds_behind,
        "parked": status.parked,
        "last_error": status.last_error,
        "holder": status.holder,
        "updated_at": status.updated_at.isoformat(),
        "rebuild": None
        if rebuild is None
        else {
            "version": rebuild.version,
            "done": rebuild.done,
            "total": rebuild.total,
            "rate": rebuild.rate,
            "elapsed": rebuild.elapsed,
            "finished": rebuild.finished,
        },
    }


def with_report(
    health: ProjectionHealth, report: Mapping[str, Any] | None, now: datetime
) -> ProjectionHealth:
    """``health`` with what only the runner knows taken from its published ``report``.

    The counts stay as read from the stores: they are fresher than any report, and a
    parked event retried from another process is not in the runner's own count.
    """
    if report is None:
        return health
    age = report_age(report, now)
    return replace(
        health,
        state=str(report.get("state") or "unknown"),
        last_error=report.get("last_error"),
        holder=report.get("holder"),
        report_age=None if math.isinf(age) else age,
        rebuild=report.get("rebuild"),
    )


def report_age(report: Mapping[str, Any], now: datetime | None = None) -> float:
    """Seconds since ``report`` was published (``inf`` when it says no time)."""
    updated_at = report.get("updated_at")
    if not updated_at:
        return float("inf")
    stamp = datetime.fromisoformat(str(updated_at))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - stamp).total_seconds())


@dataclass(frozen=True, slots=True)
class _Lag:
    events: int
    capped: bool
    seconds: float


async def _lag(event_store: EventStore, after: Position, cap: int, now: datetime) -> _Lag:
    """Count the events after ``after``, up to ``cap``, and how long the oldest waited."""
    count, oldest, position, capped = 0, None, after, False
    while True:
        page = await event_store.read_all(position, _PAGE)
        if not page:
            break
        if oldest is None:
            oldest = page[0].recorded_at
        count += len(page)
        position = page[-1].position
        if len(page) < _PAGE:
            break
        if count >= cap:
            count, capped = cap, True
            break
    seconds = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
    return _Lag(count, capped, seconds)


async def projection_health(services: Services, cap: int = BEHIND_CAP) -> list[ProjectionHealth]:
    """Every projection's health, from the stores and the runners' published statuses."""
    now = datetime.now(UTC)
    reports = await published_reports(services)
    lags: dict[Position, _Lag] = {}  # projections at one checkpoint share one count
    result = []
    for name, store in services.read_stores.items():
        checkpoint = await store.live_checkpoint(name)
        lag: _Lag | None = None
        if checkpoint is not None:
            if checkpoint not in lags:
                lags[checkpoint] = await _lag(services.event_store, checkpoint, cap, now)
            lag = lags[checkpoint]
        version = await store.live_version(name)
        health = ProjectionHealth(
            name=name,
            version=version,
            checkpoint=None if checkpoint is None else str(checkpoint),
            events_behind=None if lag is None else lag.events,
            behind_capped=lag is not None and lag.capped,
            seconds_behind=None if lag is None else round(lag.seconds, 3),
            parked=0 if version is None else await store.parked_count(name, version),
        )
        result.append(with_report(health, reports.get(name), now))
    return result


# -- parked events ----------------------------------------------------------------------


async def parked_events(services: Services, name: str) -> list[ParkedEvent]:
    """The events the projection's live version parked, oldest first."""
    return await _store_of(services, name).parked_events(name)


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """What retrying one parked event did: ``error`` is ``None`` when it was applied and
    unparked, else why it failed (it stays parked)."""

    parked: ParkedEvent
    error: str | None


async def _idle_runner(services: Services, name: str) -> ProjectionRunner:
    # Never started: it only lends its parked-event transactions (handle + unpark in
    # one commit), which work without the runner's loop and its lease, so the runner
    # of the running service keeps the projection undisturbed. It finds the stored
    # version readers use by itself (a requested rebuild numbers it past the code's).
    runner = ProjectionRunner(services.event_store)
    runner.add(services.projections[name], services.read_stores[name])
    return runner


async def _find_parked(services: Services, name: str, ids: Sequence[str]) -> list[ParkedEvent]:
    parked = {p.id: p for p in await parked_events(services, name)}
    missing = [i for i in ids if i not in parked]
    if missing:
        raise OperationError(
            f"no parked event {missing[0]!r} in {name} (parked now: {', '.join(parked) or 'none'})"
        )
    return [parked[i] for i in ids]


async def retry_parked(
    services: Services, name: str, ids: Sequence[str] | None, user: str
) -> list[RetryOutcome]:
    """Handle parked events again, after their cause was fixed; ``ids=None`` retries all.

    Each event is applied and unparked in one read-store transaction, or stays parked
    with the new error. Unknown ids are refused before anything is retried.
    """
    _store_of(services, name)
    if ids is None:
        entries = await parked_events(services, name)
    else:
        entries = await _find_parked(services, name, ids)
    runner = await _idle_runner(services, name)
    outcomes = []
    for entry in entries:
        error: str | None = None
        try:
            await runner.retry_parked(name, entry.id)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        fields = _parked_fields(entry, user)
        if error is None:
            log.info("%s: retried parked event %s", name, entry.id, extra=fields)
        else:
            log.warning(
                "%s: parked event %s failed again: %s",
                name,
                entry.id,
                error,
                extra={**fields, "error": error},
            )
        outcomes.append(RetryOutcome(entry, error))
    return outcomes


async def discard_parked(
    services: Services, name: str, parked_id: str, reason: str, user: str
) -> ParkedEvent:
    """Drop a parked event for good, logging who did it and why (the log is the record)."""
    if not reason.strip():
        raise OperationError("say why the event is discarded (--reason)")
    _store_of(services, name)
    (entry,) = await _find_parked(services, name, [parked_id])
    await (await _idle_runner(services, name)).discard_parked(name, parked_id)
    log.warning(
        "%s: discarded parked event %s (%s in %s v%d) by %s: %s",
        name,
        parked_id,
        entry.event_type,
        entry.stream_id,
        entry.stream_version,
        user,
        reason,
        extra={**_parked_fields(entry, user), "reason": reason},
    )
    return entry


def _parked_fields(entry: ParkedEvent, user: str) -> dict[str, Any]:
    return {
        "projection": entry.projection,
        "parked_id": entry.id,
        "stream_id": entry.stream_id,
        "stream_version": entry.stream_version,
        "event_type": entry.event_type,
        "user": user,
    }


# -- events ---------------------------------------------------------------------------------


async def stream_events(services: Services, stream_id: str) -> list[RecordedEvent]:
    """Every event of one stream, in version order."""
    events = await services.event_store.read_stream(stream_id)
    if not events:
        raise OperationError(f"no stream {stream_id!r} (stream ids look like Order-<uuid>)")
    return events


def event_type_of(recorded: RecordedEvent) -> str:
    """The stored type name (also of an event this program can no longer decode)."""
    event = recorded.event
    return event.stored_type if isinstance(event, UndecodableEvent) else event.event_type


def describe_event(recorded: RecordedEvent) -> dict[str, Any]:
    """An event as JSON-ready data: where it is, when, its lineage and its payload."""
    event = recorded.event
    metadata = event.metadata
    described: dict[str, Any] = {
        "stream_id": recorded.stream_id,
        "version": recorded.version,
        "position": str(recorded.position),
        "type": event_type_of(recorded),
        "recorded_at": recorded.recorded_at.isoformat(),
        "message_id": str(metadata.message_id),
        "correlation_id": None if metadata.correlation_id is None else str(metadata.correlation_id),
        "causation_id": None if metadata.causation_id is None else str(metadata.causation_id),
        "user_id": metadata.user_id,
    }
    if isinstance(event, UndecodableEvent):
        described["payload"] = event.stored_data
        described["undecodable"] = event.reason
    else:
        described["payload"] = event.model_dump(mode="json", exclude={"metadata"})
    return described


async def follow_events(
    event_store: EventStore,
    after: Position,
    types: frozenset[str] | None,
    stop: asyncio.Event,
    wait: float = 1.0,
) -> AsyncIterator[RecordedEvent]:
    """The events after ``after`` as they become readable (of ``types``, when given),
    until ``stop`` is set."""
    position = after
    while not stop.is_set():
        reading = asyncio.create_task(event_store.next_events(position, 500, timeout=wait))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([reading, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not reading.done():
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            return
        for recorded in reading.result():
            position = recorded.position
            if types is None or event_type_of(recorded) in types:
                yield recorded


async def latest_events(services: Services, count: int) -> list[RecordedEvent]:
    """The last ``count`` readable events, in global order (fewer when the store has fewer).

    Stores read only forwards, so this steps back from the head in doubling strides until
    at least ``count`` events follow, then reads forwards from there: a few short reads
    however many events the store holds.
    """
    if count < 1:
        raise OperationError("ask for at least one event")
    store = services.event_store
    head = await store.head()
    if head == START:
        return []
    stride = count
    while True:
        start = _back_from(head, stride)
        if start == START or len(await store.read_all(start, count)) >= count:
            break
        stride *= 2
    latest: deque[RecordedEvent] = deque(maxlen=count)
    position = start
    while True:
        page = await store.read_all(position, _PAGE)
        latest.extend(page)
        if len(page) < _PAGE:
            return list(latest)
        position = page[-1].position


def _back_from(head: Position, stride: int) -> Position:
    # Where a stride back lands: in the global sequence on stores that commit in order
    # (commit 0), in transaction ids on PostgreSQL, whose readers order by those first.
    if head.commit == 0:
        return Position(0, max(0, head.seq - stride))
    return Position(max(0, head.commit - stride), 0)


# -- rebuilds ---------------------------------------------------------------------------


async def request_rebuild(services: Services, name: str) -> int | None:
    """Ask the runner holding ``name`` to rebuild it beside the live version; returns the
    live version before the rebuild (see :func:`watch_rebuild`)."""
    store = _store_of(services, name)
    before: int | None = await store.live_version(name)
    await ask_for_rebuild(store, name)
    log.info("%s: rebuild requested", name, extra={"projection": name, "live_version": before})
    return before


@dataclass(frozen=True, slots=True)
class RebuildStep:
    """One look at a rebuild: the runner's progress report (``done``, ``total``, ``rate``,
    ``elapsed``, ``finished``, ``version``; ``None`` before it starts) and the live
    version; ``finished`` once readers use a new version."""

    progress: Mapping[str, Any] | None
    live_version: int | None
    finished: bool


async def watch_rebuild(
    services: Services, name: str, replaced: int | None, every: float = 0.5
) -> AsyncIterator[RebuildStep]:
    """Follow a rebuild of ``name`` until readers use a version other than ``replaced``."""
    store = _store_of(services, name)
    while True:
        progress = (await published_reports(services)).get(name, {}).get("rebuild")
        live = await store.live_version(name)
        if progress is not None and progress.get("version") == replaced:
            progress = None  # the report of an earlier rebuild, the one that made `replaced`
        finished = live != replaced
        yield RebuildStep(progress, live, finished)
        if finished:
            return
        await asyncio.sleep(every)
