"""Redis read store (redis.asyncio): read models as keys under a per-version prefix.

A batch's writes are queued on a ``MULTI`` pipeline together with the checkpoint, so they
apply all together or not at all. The checkpoint key is ``WATCH``ed, so a batch commits only
if no other runner moved the checkpoint meanwhile. Reads made inside a batch (through
``uow.client``) do not see the batch's own queued writes: write with commands that compute
on the server (``HINCRBY``, ``HSET``, ...) rather than read-modify-write.

Each parked event is a key of its own, indexed by a sorted set per projection version, so
that unparking one (a commit guard) ``WATCH``es only that event's key: parking other
events meanwhile does not fail it.

Waiters in other processes are woken through pub/sub. The subscription is re-made (with
backoff) whenever its connection drops, and waiters are woken after every (re)subscribe,
since messages published meanwhile are gone; a slow heartbeat also wakes them, so that a
lost connection costs a waiter at most a heartbeat, never its whole timeout.

The key names are in ``_redis_keys``, the pub/sub listener in ``_redis_listener``, parked
events in ``_redis_parked`` and ``read_version`` in ``_redis_read_version``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.exceptions import WatchError

from cqrskit._signal import Signal
from cqrskit.readstore._redis_keys import _text
from cqrskit.readstore._redis_keys import glob_escape as glob_escape  # for tests and tools
from cqrskit.readstore._redis_listener import _CONNECTION_ERRORS, _close_quietly, _RedisListener
from cqrskit.readstore._redis_parked import _parked_record, _RedisParked
from cqrskit.readstore._redis_read_version import _RedisVersionReader
from cqrskit.readstore.base import (
    CHANGED,
    CheckpointConflict,
    ProjectionSpec,
    ReadTransaction,
    SetupHook,
    check_projection_name,
    stored_form,
    wait_with_signal,
)
from cqrskit.store._connect import connecting
from cqrskit.store.base import START, Position

__all__ = ["REDIS_TIMEOUT", "RedisReadStore", "RedisUnitOfWork"]

REDIS_TIMEOUT: Final = 4.0
"""Seconds to connect to Redis, and to wait for one reply (redis-py's own default: no
limit). A server that stops answering without closing the connection (a partition) then
fails queries and batches, rather than holding them; pub/sub waits are not limited."""


class RedisUnitOfWork:
    """A projection's writes in one ``MULTI``/``EXEC``.

    Queue commands on :attr:`pipe` (no ``await``: they run at commit) with keys made by
    :meth:`key`, which puts them under the version's prefix.
    """

    def __init__(self, pipe: Pipeline, client: Redis, prefix: str) -> None:
        self.pipe = pipe
        self.client = client
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        """The key ``parts`` (joined by ``:``) of the version being written."""
        return self.prefix + ":".join(parts)


class RedisReadStore(_RedisListener, _RedisParked, _RedisVersionReader):
    """Read models in Redis.

    Keys: ``{prefix}{projection}:v{version}:...`` for the model, ``{prefix}live``
    (projection -> live version), ``{prefix}checkpoint:{projection}:v{version}``,
    ``{prefix}parked:{projection}:v{version}:{id}`` (one parked event, JSON) and the sorted
    set ``{prefix}parked:{projection}:v{version}`` of the version's parked ids (scored by
    global sequence number). Commits publish on ``{prefix}checkpoints``.
    """

    heartbeat_interval = 5.0
    """Seconds between fallback wake-ups while subscribed."""
    reconnecting_heartbeat_interval = 0.5
    """Seconds between fallback wake-ups while the subscription is down."""
    max_retry_delay = 2.0
    """The longest pause between two attempts to subscribe again."""

    def __init__(self, client: Redis, prefix: str = "cqrskit:") -> None:
        self.client = client
        self._prefix = prefix
        self._signal = Signal()
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while the pub/sub subscription is in place (tests wait on it)."""

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str = "cqrskit:",
        *,
        timeout: float | None = REDIS_TIMEOUT,
        connect_timeout: float | None = None,
    ) -> RedisReadStore:
        """A store on the Redis server named by ``url`` (``redis://host:port/db``).

        Connects lazily, on first use; :meth:`open` checks the server first. Each reply
        may take ``timeout`` seconds (``None``: no limit), and connecting
        ``connect_timeout`` (default: ``timeout``).
        """
        client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout if connect_timeout is None else connect_timeout,
        )
        return cls(client, prefix)

    @classmethod
    async def open(
        cls,
        url: str,
        prefix: str = "cqrskit:",
        *,
        timeout: float | None = REDIS_TIMEOUT,
        connect_timeout: float | None = None,
    ) -> RedisReadStore:
        """A store on the Redis server named by ``url``, once it answered a ``PING``.

        A server that cannot be reached (or refuses the login) raises
        :class:`~cqrskit.errors.StoreUnavailable` naming it, password masked, at once:
        rather than a projection runner failing, retrying and logging, again and again.
        """
        store = cls.from_url(url, prefix, timeout=timeout, connect_timeout=connect_timeout)
        try:
            async with connecting("Redis read store", url, _CONNECTION_ERRORS):
                await store.client.ping()
        except BaseException:
            await store.client.aclose()
            raise
        return store

    async def prepare(self, projection: ProjectionSpec, setup: SetupHook[RedisUnitOfWork]) -> bool:
        """Create the version's checkpoint once (and make the first version live)."""
        name, version = projection.name, projection.version
        check_projection_name(name)
        key = self._checkpoint_key(name, version)
        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            if await pipe.exists(key):
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            await setup(RedisUnitOfWork(pipe, self.client, self.version_prefix(name, version)))
            pipe.set(key, "0:0")
            pipe.hsetnx(self._live_key, name, str(version))
            pipe.publish(self._channel, name)
            try:
                await pipe.execute()
            except WatchError:
                return False  # prepared by a concurrent runner
        self._signal.fire({name: CHANGED})
        return True

    @asynccontextmanager
    async def transaction(
        self, projection: ProjectionSpec, expected: Position | None
    ) -> AsyncIterator[ReadTransaction[RedisUnitOfWork]]:
        """One ``MULTI``/``EXEC`` over a projection version, guarded by its checkpoint.

        Unparking (:meth:`ReadTransaction.unpark`) is a guard too: if an unparked id is no
        longer parked at commit (a concurrent retry or discard won), nothing is applied and
        :class:`LookupError` is raised.
        """
        name, version = projection.name, projection.version
        check_projection_name(name)
        key = self._checkpoint_key(name, version)
        async with self.client.pipeline(transaction=True) as pipe:
            if expected is not None:
                await pipe.watch(key)
                raw = await pipe.get(key)
                actual = None if raw is None else Position.parse(_text(raw))
                if actual != expected:
                    raise CheckpointConflict(name, version, expected, actual)
            pipe.multi()  # type: ignore[no-untyped-call]
            tx = ReadTransaction(
                RedisUnitOfWork(pipe, self.client, self.version_prefix(name, version))
            )
            yield tx
            if tx.unparked:
                await self._guard_unparked(pipe, name, version, tx.unparked)
            self._bookkeeping(pipe, name, version, tx)
            try:
                await pipe.execute()
            except WatchError:
                actual = await self.checkpoint(name, version)
                if expected is None or actual == expected:
                    missing = await self._missing_parked(name, version, tx.unparked)
                    if missing is not None:
                        # A concurrent retry or discard unparked the event first.
                        raise missing from None
                raise CheckpointConflict(name, version, expected or START, actual) from None
        self._signal.fire({name: CHANGED})

    def _bookkeeping(
        self, pipe: Pipeline, name: str, version: int, tx: ReadTransaction[Any]
    ) -> None:
        now = datetime.now(UTC).isoformat()
        for event, error, attempts in tx.parked:
            form = stored_form(event)
            record = {
                "position": [event.position.commit, event.position.seq],
                "stream_id": event.stream_id,
                "stream_version": event.version,
                "event_type": form.event_type,
                "error": error,
                "attempts": attempts,
                "parked_at": now,
                "schema_version": form.schema_version,
                "data": form.data,
                "metadata": form.metadata,
            }
            parked_id = str(event.position)
            pipe.set(self._parked_key(name, version, parked_id), orjson.dumps(record))
            pipe.zadd(self._parked_index(name, version), {parked_id: event.position.seq})
        for failed, error in tx.retry_failures:
            # SET ... XX: only while still parked, so a retry or discard that won stays.
            pipe.set(
                self._parked_key(name, version, failed.id),
                orjson.dumps(_parked_record(replace(failed, attempts=failed.attempts + 1), error)),
                xx=True,
            )
        for parked_id in tx.unparked:
            pipe.delete(self._parked_key(name, version, parked_id))
            pipe.zrem(self._parked_index(name, version), parked_id)
        if tx.new_checkpoint is not None:
            position = tx.new_checkpoint
            pipe.set(self._checkpoint_key(name, version), f"{position.commit}:{position.seq}")
        if tx.switch_live:
            pipe.hset(self._live_key, name, str(version))
        pipe.publish(self._channel, name)

    async def checkpoint(self, projection: str, version: int) -> Position | None:
        """The checkpoint of one projection version."""
        raw = await self.client.get(self._checkpoint_key(projection, version))
        return None if raw is None else Position.parse(_text(raw))

    async def live_version(self, projection: str) -> int | None:
        """The version readers use."""
        raw = await self.client.hget(self._live_key, projection)
        return None if raw is None else int(_text(raw))

    async def live_checkpoint(self, projection: str) -> Position | None:
        """The checkpoint of the version readers use."""
        version = await self.live_version(projection)
        return None if version is None else await self.checkpoint(projection, version)

    async def live_prefix(self, projection: str) -> str:
        """Readers' view: the key prefix of the live version (raises if none is live)."""
        version = await self.live_version(projection)
        if version is None:
            raise LookupError(f"projection {projection!r} has no live version yet")
        return self.version_prefix(projection, version)

    # KEYS: 1 the live-versions hash. ARGV: 1 the projection, 2 its versions' prefix up to
    # the number, 3... the hashes to read, relative to the live version's prefix.
    _LIVE_HASHES = """
local version = redis.call('HGET', KEYS[1], ARGV[1])
if not version then return false end
local prefix = ARGV[2] .. version .. ':'
local found = {}
for i = 3, #ARGV do found[#found + 1] = redis.call('HGETALL', prefix .. ARGV[i]) end
return found
"""

    async def live_hashes(self, projection: str, *names: str) -> list[dict[str, Any]] | None:
        """The hashes ``names`` (keys relative to the live version's prefix, as
        ``key`` makes them) of ``projection``, read at one moment in one round trip;
        ``None`` before the projection has a live version. A missing hash is empty.

        The same as :meth:`live_prefix` then ``HGETALL`` each, in one Lua script: a
        read that one lookup answers (an order's details) then costs one round trip,
        not two, and a rebuild's switch-over cannot fall between its reads.
        """
        reply = await self.client.eval(
            self._LIVE_HASHES,
            1,
            self._live_key,
            projection,
            self._versions_prefix(projection),
            *names,
        )
        if not reply:
            return None
        return [{_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)} for flat in reply]

    async def wait_for_checkpoint(
        self, projection: str, position: Position, timeout: float
    ) -> Position | None:
        """Wait until the live checkpoint reaches ``position``; woken by pub/sub."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="cqrskit-redis-listen")
            self._heartbeat = asyncio.create_task(self._beat(), name="cqrskit-redis-heartbeat")
        return await wait_with_signal(
            self._signal, self.live_checkpoint, projection, position, timeout
        )

    async def put_control(self, projection: str, kind: str, value: str) -> None:
        """Keep a control record (a field of one hash per kind)."""
        record = orjson.dumps({"value": value, "at": datetime.now(UTC).isoformat()})
        await self.client.hset(self._control_key(kind), projection, record)

    async def controls(self, kind: str) -> dict[str, tuple[str, datetime]]:
        """Every projection's control record of ``kind``."""
        raw = await self.client.hgetall(self._control_key(kind))
        records = {}
        for field, text in raw.items():
            record = orjson.loads(text)
            records[_text(field)] = (str(record["value"]), datetime.fromisoformat(record["at"]))
        return records

    async def take_control(self, projection: str, kind: str) -> str | None:
        """Remove and return a control record; HDEL's count decides who gets it."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hget(self._control_key(kind), projection)
            pipe.hdel(self._control_key(kind), projection)
            text, removed = await pipe.execute()
        return str(orjson.loads(text)["value"]) if removed and text is not None else None

    async def drop_version(self, projection: str, version: int) -> None:
        """Delete a version's keys, checkpoint and parked events."""
        check_projection_name(projection)
        if await self.live_version(projection) == version:
            raise ValueError(f"{projection} v{version} is live; switch before dropping it")
        index = self._parked_index(projection, version)
        for prefix in (self.version_prefix(projection, version), index + ":"):
            await self._unlink_matching(glob_escape(prefix) + "*")
        await self.client.unlink(self._checkpoint_key(projection, version), index)

    async def _unlink_matching(self, pattern: str) -> None:
        batch: list[Any] = []
        async for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await self.client.unlink(*batch)
                batch = []
        if batch:
            await self.client.unlink(*batch)

    async def close(self) -> None:
        """Stop listening and close the connection pool (whatever state the listener is in)."""
        try:
            for task in (self._heartbeat, self._listener):
                if task is not None:
                    task.cancel()
                    # A listener that died has nothing left to report at close.
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            self._heartbeat = self._listener = None
            pubsub, self._pubsub = self._pubsub, None
            if pubsub is not None:
                await _close_quietly(pubsub)
        finally:
            await self.client.aclose()
