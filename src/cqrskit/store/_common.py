"""What every event-store backend shares: argument checks, encoding and the append entry."""

from __future__ import annotations

import contextlib
import gc
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from cqrskit.errors import EventEncodingError, EventStoreClosed
from cqrskit.messages import DomainEvent
from cqrskit.store._arguments import (
    check_appends,
    check_events,
    check_expected_version,
    check_id,
    check_idempotency,
    check_limit,
    check_position,
    check_types,
)
from cqrskit.store.base import (
    ANY,
    AppendResult,
    EventPage,
    Idempotency,
    Position,
    RecordedEvent,
    StreamAppend,
)
from cqrskit.store.serialization import EncodedEvent, EventRegistry, spliced


@dataclass(frozen=True, slots=True)
class EncodedAppend:
    """One stream's part of an append, encoded and checked."""

    stream_id: str
    events: tuple[EncodedEvent, ...]
    expected_version: int


class EventStoreBase(ABC):
    """Validates and encodes appends, then hands them to the backend's ``_append``.

    Encoded appends reach ``_append`` sorted by stream id, so that two concurrent
    multi-stream appends lock rows in the same order and cannot deadlock.
    """

    def __init__(self, registry: EventRegistry) -> None:
        self.registry = registry
        self._closed = False

    def _ensure_open(self) -> None:
        if self._closed:
            raise EventStoreClosed()

    async def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        expected_version: int = ANY,
        *,
        idempotency: Idempotency | None = None,
    ) -> AppendResult:
        """Append ``events`` to one stream if it is at ``expected_version``."""
        return await self.append_many(
            [StreamAppend(stream_id, events, expected_version)], idempotency=idempotency
        )

    async def append_many(
        self, appends: Sequence[StreamAppend], *, idempotency: Idempotency | None = None
    ) -> AppendResult:
        """Append to several streams in one transaction: all or nothing.

        Every argument is checked and every event encoded before anything is written:
        ``TypeError`` for a wrong kind of argument, ``ValueError`` for a bad value,
        :class:`~cqrskit.errors.EventEncodingError` for an event that could not be read
        back; the same on every backend.
        """
        self._ensure_open()
        check_appends(appends)
        check_idempotency(idempotency)
        encoded = self._encode(appends)
        return await self._append(encoded, [a.stream_id for a in appends], idempotency)

    def _encode(self, appends: Sequence[StreamAppend]) -> list[EncodedAppend]:
        seen: set[str] = set()
        encoded: list[EncodedAppend] = []
        for append in appends:
            stream_id = check_id(append.stream_id, "a stream id")
            if stream_id in seen:
                raise ValueError(f"stream {stream_id!r} appears twice in one append")
            expected_version = check_expected_version(append.expected_version)
            events = check_events(append.events, stream_id)
            seen.add(stream_id)
            encoded.append(
                EncodedAppend(
                    stream_id,
                    tuple(_without_nul(self.registry.encode(e)) for e in events),
                    expected_version,
                )
            )
        encoded.sort(key=lambda a: a.stream_id)
        return encoded

    async def next_events(
        self,
        after: Position | str,
        limit: int = 1000,
        *,
        timeout: float,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        """Up to ``limit`` events after ``after`` (a position or a consistency token) once
        one is readable, waiting up to ``timeout``; an empty page when none became
        readable in time. ``types`` as for :meth:`read_all`."""
        after = check_position(after)
        check_limit(limit)
        check_types(types)
        if not await self.wait_for_events(after, timeout):
            return EventPage(end=after, scanned=0)
        return await self.read_all(after, limit, types=types)

    @abstractmethod
    async def wait_for_events(self, after: Position | str, timeout: float) -> bool:
        """Wait until an event after ``after`` is readable; false when ``timeout`` ran out."""

    @abstractmethod
    async def read_all(
        self,
        after: Position | str,
        limit: int = 1000,
        *,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        """Up to ``limit`` events after ``after`` (a position or a consistency token) in
        global order; of ``types`` only, when given."""

    def _passed_over(self, types: object) -> list[str] | None:
        """The stored type names a read of ``types`` passes over (``None``: none)."""
        checked = check_types(types)
        return None if checked is None else self.registry._names_outside(checked)

    @abstractmethod
    async def _append(
        self,
        appends: list[EncodedAppend],
        stream_order: list[str],
        idempotency: Idempotency | None,
    ) -> AppendResult:
        """Write ``appends`` atomically; report versions in ``stream_order``."""


def dump_result(result: AppendResult) -> str:
    """The JSON kept with an idempotency key."""
    return orjson.dumps(
        {
            "versions": result.versions,
            "position": [result.position.commit, result.position.seq],
            "result_id": result.result_id,
        }
    ).decode()


def load_result(text: str | bytes) -> AppendResult:
    """Rebuild the result of an earlier append from its idempotency record, as a replay."""
    raw = orjson.loads(text)
    commit, seq = raw["position"]
    # An append of no streams (a command that changed nothing) may store null versions.
    versions = raw["versions"] or {}
    return AppendResult(
        versions={str(k): int(v) for k, v in versions.items()},
        position=Position(int(commit), int(seq)),
        result_id=str(raw["result_id"]),
        replayed=True,
    )


@contextlib.contextmanager
def collector_paused(objects: int = 0) -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while a page of events is decoded.

    Decoding a page allocates thousands of objects that live on (the events), which sets
    off the collector again and again, each pass walking every long-lived object in the
    process (pydantic's schemas alone are ~35k): measured, a third of ``read_all``'s time.
    Decoding makes no reference cycles and never awaits, so collection just waits until
    the page is done. Use it only around such loops: it pauses collection process-wide.

    ``objects``: how many objects the block will leave behind. From ``_PROMOTE_FROM`` on,
    they are also spared the young-generation pass that would otherwise walk all of them
    right after the block (a fifth of a rebuild's time, measured): the young generations
    are collected first (cheap: they hold little then), so that only the block's objects
    (and whatever another thread allocated meanwhile) are moved, without a pass, to the
    oldest generation. They are acyclic and die by reference counting when the page is
    dropped. Moving resets the counts that would start a full collection, so a block runs
    one first once ``_FULL_AFTER`` objects were moved since the last: cycles that became
    garbage in the oldest generation are still freed while pages keep coming. Skipped
    when the application keeps objects frozen (``gc.freeze()``), which this must not
    undo, and on free-threaded builds, where freezing walks the whole heap.
    """
    was_enabled = gc.isenabled()
    promote = (
        was_enabled and objects >= _PROMOTE_FROM and _GIL_ENABLED() and gc.get_freeze_count() == 0
    )
    if promote:
        _promoted[0] += objects
        if _promoted[0] >= _FULL_AFTER:
            _promoted[0] = 0
            gc.collect()
        else:
            gc.collect(1)
    gc.disable()
    try:
        yield
    finally:
        if promote and gc.get_freeze_count() == 0:
            # freeze() moves every tracked object to the permanent generation and resets
            # the generations' counts; unfreeze() moves them all to the oldest one.
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()


_PROMOTE_FROM: Final = 5000
"""Objects from which :func:`collector_paused` promotes them: catch-up pages, not the small
batches of a live projection, so that the process's collector works as usual when live."""

_FULL_AFTER: Final = 1_000_000
"""Objects moved by :func:`collector_paused` between two full collections (about 90,000
events). A full pass costs ~10-30 ms here; after every ten pages of 1,000 events it cost
read_all a tenth of its time."""

_promoted = [0]  # objects moved since the last full collection (a cell shared by threads)
_GIL_ENABLED: Final[Callable[[], bool]] = getattr(sys, "_is_gil_enabled", lambda: True)


# Position and RecordedEvent are frozen dataclasses, whose __init__ sets each field through
# object.__setattr__: over a microsecond per event for the two. Pages of stored events are
# built by setting the slots directly instead (the values are the store's own, checked
# already): about 0.6x the cost (timeit), and the same objects.
_new = object.__new__
_set_commit = vars(Position)["commit"].__set__
_set_seq = vars(Position)["seq"].__set__
_set_recorded = tuple(
    vars(RecordedEvent)[name].__set__
    for name in ("stream_id", "version", "position", "event", "recorded_at")
)


def _position(commit: int, seq: int) -> Position:
    position: Position = _new(Position)
    _set_commit(position, commit)
    _set_seq(position, seq)
    return position


StoredRow = tuple[str, int, int, int, str, int, str, str, Any]
"""A stored event as backends fetch it: stream id, version, commit, seq, event type,
schema version, data and metadata JSON, and the recorded time (a ``datetime``, or what
the backend's ``recorded_at`` converter turns into one)."""


_PAUSE_FROM: Final = 64
"""Rows from which :func:`decode_page` pauses the collector. Fewer (an aggregate's tail, a
live projection's batch) allocate about what one young-generation pass waits for (700
objects): pausing would spare at most that pass, and costs more (~2.5 µs a call, a
twentieth of decoding 10 events, measured)."""
_NO_PAUSE: Final = contextlib.nullcontext()


def decode_page(
    registry: EventRegistry,
    rows: Sequence[StoredRow],
    recorded_at: Callable[[Any], datetime] | None = None,
    *,
    strict: bool = True,
) -> list[RecordedEvent]:
    """Decode a page of stored rows into :class:`RecordedEvent`s: every backend's read path.

    ``recorded_at`` converts the stored time when the backend does not fetch a
    ``datetime``; consecutive rows of one append share their time, so each distinct value
    is converted once.

    A row that cannot be decoded raises :class:`EventDecodeError` when ``strict`` (loading
    an aggregate: ``read_stream``); otherwise (``read_all``) it becomes a record whose
    event is an :class:`UndecodableEvent`, so that one bad row fails only itself, not the
    page around it.
    """
    decode = registry.decode
    set_stream, set_version, set_position, set_event, set_recorded = _set_recorded
    page: list[RecordedEvent] = []
    append = page.append
    last_raw: object = None
    last_time: Any = None
    validators: dict[str, tuple[int, Callable[[str], DomainEvent]]] = {}
    # About eleven objects per event that the collector tracks (events, their metadata,
    # field sets, UUIDs, positions).
    pause = collector_paused(11 * len(rows)) if len(rows) >= _PAUSE_FROM else _NO_PAUSE
    with pause:
        for stream_id, version, commit, seq, event_type, schema, data, metadata, raw in rows:
            if recorded_at is not None:
                if raw != last_raw:
                    last_raw, last_time = raw, recorded_at(raw)
                raw = last_time
            position = _position(commit, seq)
            # A try block costs nothing until something raises (Python 3.11+).
            try:
                # EventRegistry.decode, with each type's validator looked up once a page.
                current = validators.get(event_type)
                if current is None:
                    current = validators[event_type] = registry.current_validator(event_type)
                text = spliced(data, metadata) if current[0] == schema else None
                if text is not None:
                    event: DomainEvent = current[1](text)
                else:
                    event = decode(event_type, schema, data, metadata)
            except Exception as exc:
                event = registry.undecodable(event_type, schema, data, metadata, exc)
                if strict:
                    raise event.error(stream_id, version, position) from exc
            recorded: RecordedEvent = _new(RecordedEvent)
            set_stream(recorded, stream_id)
            set_version(recorded, version)
            set_position(recorded, position)
            set_event(recorded, event)
            set_recorded(recorded, raw)
            append(recorded)
    return page


def event_page(
    registry: EventRegistry,
    rows: Sequence[StoredRow],
    after: Position,
    recorded_at: Callable[[Any], datetime] | None = None,
    *,
    filtered: bool = False,
) -> EventPage:
    """``read_all``'s page of ``rows``, the stored events it covered after ``after``.

    When ``filtered``, rows whose data is ``None`` are the events the read passes over
    (the backend left their payloads out): they are not decoded, but the page still ends
    at the last row.
    """
    if not rows:
        return EventPage(end=after, scanned=0)
    last = rows[-1]
    wanted = [r for r in rows if r[6] is not None] if filtered else rows
    events = decode_page(registry, wanted, recorded_at, strict=False) if wanted else ()
    return EventPage(events, end=_position(last[2], last[3]), scanned=len(rows))


# A JSON \u0000 escape not itself escaped (an odd run of backslashes before "u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _without_nul(event: EncodedEvent) -> EncodedEvent:
    """``event``, unless its JSON carries a NUL character: refused on every backend alike,
    since PostgreSQL cannot store one in text or jsonb."""
    for text in (event.data, event.metadata):
        if "\\u0000" in text and _NUL_ESCAPE.search(text):
            raise EventEncodingError(
                event.event_type,
                "",
                "expected text without NUL characters (\\x00), which PostgreSQL cannot "
                "store in text or jsonb",
            )
    return event
