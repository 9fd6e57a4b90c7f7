"""How the Redis read store names its keys, and reads the text of Redis replies."""

from __future__ import annotations

from typing import Any


def glob_escape(literal: str) -> str:
    """``literal`` as a Redis glob pattern (``SCAN MATCH``) that matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in literal)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _RedisKeys:
    """The key names of :class:`~cqrskit.readstore.redis.RedisReadStore`."""

    _prefix: str

    @property
    def prefix(self) -> str:
        """The prefix of every key this store uses."""
        return self._prefix

    def version_prefix(self, projection: str, version: int) -> str:
        """Where one projection version's keys live."""
        return f"{self._versions_prefix(projection)}{version}:"

    def _versions_prefix(self, projection: str) -> str:
        """What every version prefix of ``projection`` starts with (the number follows)."""
        return f"{self._prefix}{projection}:v"

    def _checkpoint_key(self, projection: str, version: int) -> str:
        return f"{self._prefix}checkpoint:{projection}:v{version}"

    def _parked_index(self, projection: str, version: int) -> str:
        return f"{self._prefix}parked:{projection}:v{version}"

    def _parked_key(self, projection: str, version: int, parked_id: str) -> str:
        # The index's name plus ":", so that one escaped SCAN MATCH finds a version's own.
        return f"{self._parked_index(projection, version)}:{parked_id}"

    @property
    def _live_key(self) -> str:
        return f"{self._prefix}live"

    @property
    def _channel(self) -> str:
        return f"{self._prefix}checkpoints"

    def _control_key(self, kind: str) -> str:
        return f"{self._prefix}control:{kind}"
