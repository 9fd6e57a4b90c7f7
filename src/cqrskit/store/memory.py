"""In-memory event store: the reference behaviour, for tests and examples."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cqrskit.messages import DomainEvent
from cqrskit.store._arguments import check_from_version, check_id, check_limit, check_position
from cqrskit.store._common import (
    EncodedAppend,
    EventStoreBase,
    decode_page,
    dump_result,
    load_result,
)
from cqrskit.store.base import (
    START,
    AppendResult,
    EventPage,
    Idempotency,
    Position,
    RecordedEvent,
    Snapshot,
    check_expected_version,
)
from cqrskit.store.serialization import EncodedEvent, EventRegistry

__all__ = ["MemoryEventStore", "MemoryStorage"]


@dataclass(frozen=True, slots=True)
class _Row:
    stream_id: str
    version: int
    seq: int
    event: EncodedEvent
    recorded_at: datetime


@dataclass
class MemoryStorage:
    """The data behind one or more :class:`MemoryEventStore` handles."""

    rows: list[_Row] = field(default_factory=list)
    streams: dict[str, list[_Row]] = field(default_factory=dict)
    idempotency: dict[str, str] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    changed: asyncio.Condition | None = None

    def condition(self) -> asyncio.Condition:
        if self.changed is None:
            self.changed = asyncio.Condition()
        return self.changed


class MemoryEventStore(EventStoreBase):
    """Keeps events in process memory; several handles may share one :class:`MemoryStorage`.

    Stored events are kept encoded, exactly as the durable backends keep them, so that
    serialization and upcasting behave the same here.
    """

    def __init__(self, registry: EventRegistry, storage: MemoryStorage | None = None) -> None:
        super().__init__(registry)
        self.storage = storage if storage is not None else MemoryStorage()

    async def _append(
        self,
        appends: list[EncodedAppend],
        stream_order: list[str],
        idempotency: Idempotency | None,
    ) -> AppendResult:
        data = self.storage
        # No await until every row is in place: the append is atomic for other tasks.
        if idempotency is not None and idempotency.key in data.idempotency:
            return load_result(data.idempotency[idempotency.key])
        versions: dict[str, int] = {}
        for append in appends:
            current = len(data.streams.get(append.stream_id, ()))
            check_expected_version(append.stream_id, append.expected_version, current)
            versions[append.stream_id] = current
        now = datetime.now(UTC)
        for append in appends:
            stream = data.streams.setdefault(append.stream_id, [])
            for event in append.events:
                row = _Row(append.stream_id, len(stream) + 1, len(data.rows) + 1, event, now)
                stream.append(row)
                data.rows.append(row)
            versions[append.stream_id] = len(stream)
        result = AppendResult(
            versions={s: versions[s] for s in stream_order},
            position=Position(0, len(data.rows)),
            result_id=idempotency.result_id if idempotency else "",
        )
        if idempotency is not None:
            data.idempotency[idempotency.key] = dump_result(result)
        if any(a.events for a in appends):
            cond = data.condition()
            async with cond:
                cond.notify_all()
        return result

    def _recorded(self, rows: list[_Row], *, strict: bool) -> list[RecordedEvent]:
        return decode_page(
            self.registry,
            [
                (
                    r.stream_id,
                    r.version,
                    0,
                    r.seq,
                    r.event.event_type,
                    r.event.schema_version,
                    r.event.data,
                    r.event.metadata,
                    r.recorded_at,
                )
                for r in rows
            ],
            strict=strict,
        )

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """The events of one stream from ``from_version`` on, in version order."""
        self._ensure_open()
        check_id(stream_id, "a stream id")
        check_from_version(from_version)
        rows = self.storage.streams.get(stream_id, [])
        return self._recorded(rows[max(from_version, 1) - 1 :], strict=True)

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 when it does not exist."""
        self._ensure_open()
        check_id(stream_id, "a stream id")
        return len(self.storage.streams.get(stream_id, ()))

    async def read_all(
        self,
        after: Position | str = START,
        limit: int = 1000,
        *,
        types: Collection[type[DomainEvent]] | None = None,
    ) -> EventPage:
        """Up to ``limit`` events after ``after`` (a position or a consistency token) in
        global order; with ``types``, only those of the covered events that are of them."""
        self._ensure_open()
        after = check_position(after)
        check_limit(limit)
        passed_over = self._passed_over(types)
        rows = self.storage.rows[after.seq : after.seq + limit]
        if not rows:
            return EventPage(end=after, scanned=0)
        wanted = rows
        if passed_over is not None:
            names = frozenset(passed_over)
            wanted = [r for r in rows if r.event.event_type not in names]
        events = self._recorded(wanted, strict=False) if wanted else ()
        return EventPage(events, end=Position(0, rows[-1].seq), scanned=len(rows))

    async def head(self) -> Position:
        """The position of the last event."""
        self._ensure_open()
        return Position(0, len(self.storage.rows))

    async def wait_for_events(self, after: Position | str, timeout: float) -> bool:
        """Wait until an event after ``after`` exists; false on timeout."""
        self._ensure_open()
        seq = check_position(after).seq
        if len(self.storage.rows) > seq:
            return True
        cond = self.storage.condition()
        async with cond:
            try:
                await asyncio.wait_for(
                    cond.wait_for(lambda: len(self.storage.rows) > seq or self._closed),
                    timeout,
                )
            except TimeoutError:
                return False
        self._ensure_open()
        return True

    async def find_idempotent(self, key: str) -> AppendResult | None:
        """The result of the append made with idempotency ``key``, if any."""
        self._ensure_open()
        check_id(key, "an idempotency key")
        text = self.storage.idempotency.get(key)
        return None if text is None else load_result(text)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing an older one of the same stream."""
        self._ensure_open()
        current = self.storage.snapshots.get(snapshot.stream_id)
        if current is None or snapshot.version > current.version:
            self.storage.snapshots[snapshot.stream_id] = snapshot

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of the stream, if any."""
        self._ensure_open()
        return self.storage.snapshots.get(stream_id)

    async def close(self) -> None:
        """Close this handle (the storage stays for other handles); wakes its waiters."""
        if self._closed:
            return
        self._closed = True
        cond = self.storage.condition()
        async with cond:
            cond.notify_all()
