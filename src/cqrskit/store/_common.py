"""What every event-store backend shares: argument checks, encoding and the append entry."""

from __future__ import annotations

import contextlib
import gc
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import orjson

from cqrskit.errors import EventStoreClosed
from cqrskit.messages import DomainEvent
from cqrskit.store.base import (
    ANY,
    AppendResult,
    Idempotency,
    Position,
    StreamAppend,
)
from cqrskit.store.serialization import EncodedEvent, EventRegistry


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
        """Append to several streams in one transaction: all or nothing."""
        self._ensure_open()
        encoded = self._encode(appends)
        if idempotency is not None and not idempotency.key:
            raise ValueError("an idempotency key must not be empty")
        return await self._append(encoded, [a.stream_id for a in appends], idempotency)

    def _encode(self, appends: Sequence[StreamAppend]) -> list[EncodedAppend]:
        seen: set[str] = set()
        encoded: list[EncodedAppend] = []
        for append in appends:
            if not append.stream_id:
                raise ValueError("a stream id must not be empty")
            if "\x00" in append.stream_id:
                raise ValueError(
                    f"a stream id must not contain NUL characters: {append.stream_id!r}"
                )
            if append.stream_id in seen:
                raise ValueError(f"stream {append.stream_id!r} appears twice in one append")
            if append.expected_version < ANY:
                raise ValueError(
                    f"expected version must be ANY, NO_STREAM or >= 1, "
                    f"got {append.expected_version}"
                )
            seen.add(append.stream_id)
            encoded.append(
                EncodedAppend(
                    append.stream_id,
                    tuple(_without_nul(self.registry.encode(e)) for e in append.events),
                    append.expected_version,
                )
            )
        encoded.sort(key=lambda a: a.stream_id)
        return encoded

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
def collector_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while a page of events is decoded.

    Decoding a page allocates thousands of objects that live on (the events), which sets
    off the collector again and again, each pass walking every long-lived object in the
    process (pydantic's schemas alone are ~35k): measured, a third of ``read_all``'s time.
    Decoding makes no reference cycles and never awaits, so collection just waits until
    the page is done. Use it only around such loops: it pauses collection process-wide.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# A JSON \u0000 escape not itself escaped (an odd run of backslashes before "u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _without_nul(event: EncodedEvent) -> EncodedEvent:
    """``event``, unless its JSON carries a NUL character: refused on every backend alike,
    since PostgreSQL cannot store one in text or jsonb."""
    for text in (event.data, event.metadata):
        if "\\u0000" in text and _NUL_ESCAPE.search(text):
            raise ValueError(
                f"{event.event_type}: event data must not contain NUL characters (\\x00)"
            )
    return event
