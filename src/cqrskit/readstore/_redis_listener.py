"""The Redis read store's pub/sub listener: waiters in other processes are woken by
commits' messages, by every (re)subscribe, and by a slow heartbeat."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from cqrskit._signal import Signal
from cqrskit.readstore._redis_keys import _RedisKeys
from cqrskit.readstore.base import CHANGED

_log = logging.getLogger("cqrskit.readstore.redis")

_CONNECTION_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)
"""What redis-py raises when the server or the network goes away."""


class _RedisListener(_RedisKeys):
    """The pub/sub listener and heartbeat of :class:`~cqrskit.readstore.redis.RedisReadStore`."""

    client: Redis
    heartbeat_interval: float
    reconnecting_heartbeat_interval: float
    max_retry_delay: float
    listening: asyncio.Event
    _signal: Signal
    _pubsub: PubSub | None

    async def _listen(self) -> None:
        """Stay subscribed to the checkpoint channel, subscribing again when it drops."""
        delay = 0.05
        while True:
            pubsub = self.client.pubsub()
            self._pubsub = pubsub
            try:
                await pubsub.subscribe(self._channel)
                self.listening.set()
                delay = 0.05
                # Commits made while nobody listened published messages that are gone.
                self._signal.fire()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        # Commits publish their projection's name: only its waiters read.
                        data = message.get("data")
                        name = data.decode(errors="replace") if isinstance(data, bytes) else data
                        self._signal.fire({name: CHANGED} if isinstance(name, str) else None)
                _log.warning("read store subscription ended; subscribing again")
            except Exception as exc:
                # Whatever went wrong, a fresh subscription is the way back.
                _log.warning("read store subscription lost (subscribing again): %r", exc)
            finally:
                self.listening.clear()
                self._pubsub = None
                await _close_quietly(pubsub)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_delay)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(
                self.heartbeat_interval
                if self.listening.is_set()
                else self.reconnecting_heartbeat_interval
            )
            self._signal.fire()


async def _close_quietly(pubsub: PubSub) -> None:
    try:
        # redis-py < 8.2 leaves aclose untyped; 8.2 types it. Valid on both.
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
    except _CONNECTION_ERRORS as exc:
        _log.debug("closing a lost subscription: %r", exc)
