"""A sqlite3 connection confined to one worker thread: the one way cqrskit talks to SQLite.

The event store and the SQL read store each keep a writer and a reader connection. Work
runs as a plain function on the connection's thread, so a whole transaction takes one hop
from the event loop and the loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


class ThreadConnection:
    """One sqlite3 connection (WAL, autocommit mode, 30 s busy timeout) on its own thread.

    The connection opens lazily on the thread, on the first :meth:`run`.
    """

    def __init__(
        self, path: str, synchronous: str, name: str, *, rows_as_mappings: bool = False
    ) -> None:
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._path = path
        self._synchronous = synchronous
        self._rows_as_mappings = rows_as_mappings
        self._db: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, timeout=30.0)
        if self._rows_as_mappings:
            db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the connection, on the connection's thread."""

        def call() -> T:
            if self._db is None:
                self._db = self._open()
            return fn(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def close(self) -> None:
        """Close the connection and stop its thread."""

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)
