"""Parked events in the Redis read store: each one a key of its own (JSON), indexed by a
sorted set per projection version; unparking is a commit guard on the event's key."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from cqrskit.readstore._redis_keys import _RedisKeys, _text
from cqrskit.readstore.base import ParkedEvent, no_parked_event
from cqrskit.store.base import Position


class _RedisParked(_RedisKeys):
    """The parked events of :class:`~cqrskit.readstore.redis.RedisReadStore`."""

    client: Redis

    if TYPE_CHECKING:

        async def live_version(self, projection: str) -> int | None: ...

    async def _guard_unparked(
        self, pipe: Pipeline, name: str, version: int, unparked: list[str]
    ) -> None:
        """Unparking is a guard: the commit applies only if every id is still parked then.

        The unparked events' keys (only theirs: parking others must not fail this commit)
        are ``WATCH``ed on the pipeline's connection (the pipeline is in ``MULTI`` mode, so
        the command goes out at once rather than being queued) and only then read, so an
        unpark of one of them committed by anyone after the read fails the ``EXEC``.
        """
        await pipe.immediate_execute_command(  # type: ignore[no-untyped-call]
            "WATCH", *(self._parked_key(name, version, i) for i in unparked)
        )
        missing = await self._missing_parked(name, version, unparked)
        if missing is not None:
            raise missing

    async def _missing_parked(
        self, name: str, version: int, unparked: list[str]
    ) -> LookupError | None:
        """The error for the first id of ``unparked`` that is not parked (or repeated)."""
        if not unparked:
            return None
        present = await self.client.mget([self._parked_key(name, version, i) for i in unparked])
        seen: set[str] = set()
        for parked_id, value in zip(unparked, present, strict=True):
            if value is None or parked_id in seen:
                return no_parked_event(name, version, parked_id)
            seen.add(parked_id)
        return None

    async def parked_count(self, projection: str, version: int) -> int:
        """How many events a projection version has parked (the index's size)."""
        return int(await self.client.zcard(self._parked_index(projection, version)))

    async def parked_events(self, projection: str, version: int | None = None) -> list[ParkedEvent]:
        """Parked events of a projection version (the live one by default), oldest first."""
        if version is None:
            version = await self.live_version(projection)
            if version is None:
                return []
        index = await self.client.zrange(self._parked_index(projection, version), 0, -1)
        ids = [_text(i) for i in index]
        if not ids:
            return []
        values = await self.client.mget([self._parked_key(projection, version, i) for i in ids])
        parked = []
        for parked_id, value in zip(ids, values, strict=True):
            if value is None:
                continue  # unparked between the two reads
            record = orjson.loads(value)
            commit, seq = record["position"]
            parked.append(
                ParkedEvent(
                    id=parked_id,
                    projection=projection,
                    version=version,
                    position=Position(commit, seq),
                    stream_id=record["stream_id"],
                    stream_version=record["stream_version"],
                    event_type=record["event_type"],
                    error=record["error"],
                    attempts=record["attempts"],
                    parked_at=datetime.fromisoformat(record["parked_at"]),
                    schema_version=record.get("schema_version"),
                    data=record.get("data"),
                    metadata=record.get("metadata"),
                )
            )
        # The index's score (the sequence number) is not the whole order on PostgreSQL,
        # where positions order by the writing transaction first.
        return sorted(parked, key=lambda p: p.position)


def _parked_record(parked: ParkedEvent, error: str) -> dict[str, object]:
    """The stored JSON of a parked event, with ``error`` as its last error."""
    return {
        "position": [parked.position.commit, parked.position.seq],
        "stream_id": parked.stream_id,
        "stream_version": parked.stream_version,
        "event_type": parked.event_type,
        "error": error,
        "attempts": parked.attempts,
        "parked_at": parked.parked_at.isoformat(),
        "schema_version": parked.schema_version,
        "data": parked.data,
        "metadata": parked.metadata,
    }
