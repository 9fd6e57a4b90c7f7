"""The repository's in-memory snapshots: the latest states of recently used aggregates."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from cqrskit.aggregate import Aggregate


@dataclass(frozen=True, slots=True)
class _Kept:
    category: str
    schema: int
    version: int
    state: bytes


class StateCache:
    """Up to ``size`` aggregate states by stream id, least recently used dropped first.

    A state is kept as JSON bytes, not as the object the aggregate returned, so that what
    an aggregate does with a restored state (appending to one of its lists, say) never
    reaches the kept copy, and every load gets a state of its own.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"cache_size must be >= 0, got {size}")
        self._size = size
        self._kept: OrderedDict[str, _Kept] = OrderedDict()

    def restore(self, aggregate: Aggregate) -> bool:
        """Give ``aggregate`` (new, at version 0) its kept state, if one of its type and
        snapshot schema is kept; whether it did."""
        kept = self._kept.get(aggregate.stream_id)
        if kept is None or (kept.category, kept.schema) != (
            aggregate.category,
            aggregate.snapshot_schema,
        ):
            return False
        self._kept.move_to_end(aggregate.stream_id)
        state: dict[str, Any] = orjson.loads(kept.state)
        aggregate.restore_state(state)
        aggregate.version = kept.version
        return True

    def keep(self, aggregate: Aggregate) -> None:
        """Keep the state of ``aggregate``, whose stream holds exactly its ``version``
        events as of a load or committed save."""
        if not self._size:
            return
        state = orjson.dumps(aggregate.snapshot_state())
        kept = _Kept(aggregate.category, aggregate.snapshot_schema, aggregate.version, state)
        self._kept[aggregate.stream_id] = kept
        self._kept.move_to_end(aggregate.stream_id)
        if len(self._kept) > self._size:
            self._kept.popitem(last=False)

    def forget(self, stream_id: str) -> None:
        """Drop what is kept of ``stream_id``, if anything."""
        self._kept.pop(stream_id, None)
