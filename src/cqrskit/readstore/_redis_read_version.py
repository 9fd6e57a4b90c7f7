"""One projection version of the Redis read store read whole, at one moment, by a Lua
script: for tools that compare versions (``cqrskit.projection.verify``)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from cqrskit.readstore._redis_keys import _RedisKeys, _text, glob_escape
from cqrskit.store.base import Position


class _RedisVersionReader(_RedisKeys):
    """``read_version`` of :class:`~cqrskit.readstore.redis.RedisReadStore`."""

    client: Redis

    # KEYS: 1 the version's checkpoint. ARGV: 1 a SCAN MATCH pattern of its keys.
    _READ_VERSION = """
local checkpoint = redis.call('GET', KEYS[1])
if not checkpoint then return false end
local cursor, found = '0', {}
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local kind = redis.call('TYPE', key)['ok']
    local value = false
    if kind == 'string' then value = redis.call('GET', key)
    elseif kind == 'hash' then value = redis.call('HGETALL', key)
    elseif kind == 'list' then value = redis.call('LRANGE', key, 0, -1)
    elseif kind == 'set' then value = redis.call('SMEMBERS', key)
    elseif kind == 'zset' then value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    elseif kind == 'stream' then value = redis.call('XRANGE', key, '-', '+')
    end
    found[#found + 1] = {key, kind, value}
  end
until cursor == '0'
return {checkpoint, found}
"""

    async def read_version(
        self, projection: str, version: int
    ) -> tuple[Position, list[tuple[bytes, str, Any]]] | None:
        """Every key of one projection version with its type and raw reply (``GET``,
        ``HGETALL``, ``LRANGE``, ``SMEMBERS``, ``ZRANGE ... WITHSCORES`` or ``XRANGE``;
        ``None`` for other types), and the version's checkpoint; ``None`` when the version
        does not exist. For tools that compare versions (``cqrskit.projection.verify``).

        One Lua script reads it all, so it is one consistent moment even while a runner
        commits; Redis serves no other client meanwhile (about as long as reading the
        model's keys takes), so mind the model's size.
        """
        pattern = glob_escape(self.version_prefix(projection, version)) + "*"
        key = self._checkpoint_key(projection, version)
        reply = await self.client.eval(self._READ_VERSION, 1, key, pattern)
        if not reply:
            return None
        checkpoint, found = reply
        return Position.parse(_text(checkpoint)), [(k, _text(t), v) for k, t, v in found]
