"""Configuration from ``LIBRARY_*`` environment variables; SQLite files by default.

- ``LIBRARY_DATA_DIR``: where the embedded default keeps its SQLite files
  (``./.library-data``);
- ``LIBRARY_EVENT_STORE_URL``: ``sqlite:///<data dir>/events.db`` by default, or
  ``postgresql://user@host:port/db?schema=...``;
- ``LIBRARY_READ_DB_URL``: the SQL read models, ``sqlite:///<data dir>/read.db`` by
  default, or ``postgresql://...?schema=...``;
- ``LIBRARY_REDIS_URL``: unset by default; when set (``redis://host:port/db?prefix=...``)
  the catalog lives in Redis;
- ``LIBRARY_CONSISTENCY_TIMEOUT``: seconds a read with a Consistency-Token waits (2.0).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings"]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where the library keeps its events and read models."""

    data_dir: Path = Path(".library-data")
    event_store_url: str | None = None
    read_db_url: str | None = None
    redis_url: str | None = None
    consistency_timeout: float = 2.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from ``LIBRARY_*`` variables (empty counts as unset)."""

        def get(name: str) -> str | None:
            return environ.get(f"LIBRARY_{name}") or None

        timeout = get("CONSISTENCY_TIMEOUT")
        return cls(
            data_dir=Path(get("DATA_DIR") or ".library-data"),
            event_store_url=get("EVENT_STORE_URL"),
            read_db_url=get("READ_DB_URL"),
            redis_url=get("REDIS_URL"),
            consistency_timeout=2.0 if timeout is None else float(timeout),
        )

    @property
    def events_url(self) -> str:
        """The event store's URL."""
        return self.event_store_url or f"sqlite:///{self.data_dir / 'events.db'}"

    @property
    def read_url(self) -> str:
        """The SQL read store's URL."""
        return self.read_db_url or f"sqlite:///{self.data_dir / 'read.db'}"

    @property
    def on_postgres(self) -> bool:
        """Whether events live in PostgreSQL (then several processes may share them)."""
        return self.events_url.startswith(("postgresql:", "postgres:"))
