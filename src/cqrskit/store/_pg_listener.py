"""One reconnecting LISTEN connection per handle, for the PostgreSQL event and read stores."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

_log = logging.getLogger("cqrskit.postgres.listener")

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)
"""What asyncpg raises when the server or the network goes away."""

_CONNECT_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)
_CLOSE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.InterfaceError)


class Listener:
    """Keeps one connection LISTENing on the store's channel, reconnecting when it drops.

    ``on_notify`` gets each notification's payload, and ``None`` after every (re)connect:
    notifications sent while nobody listened are gone, so whatever they would have said
    must be looked up.
    """

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_notify: Callable[[str | None], None],
        connect_options: dict[str, Any],
        *,
        max_retry_delay: float = 2.0,
        liveness_interval: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._notify = on_notify
        self._connect_options = connect_options
        self._max_retry_delay = max_retry_delay
        self._liveness_interval = liveness_interval
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self.connected = asyncio.Event()
        """Set while the LISTEN is in place (tests wait on it)."""

    @property
    def server_pid(self) -> int | None:
        """The listening backend's process id, while connected."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    def start(self) -> None:
        """Start listening in the background, once."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"cqrskit-listen-{self._channel}")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=2)
            except _CLOSE_ERRORS:
                conn.terminate()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._notify(payload)

    async def _run(self) -> None:
        delay = 0.05
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn, **self._connect_options)
            except _CONNECT_ERRORS as exc:
                _log.warning("listener on %s cannot connect (retrying): %s", self._channel, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)
                continue
            self._conn = conn
            try:
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(self._channel, self._on_notify)
                delay = 0.05
                self.connected.set()
                self._notify(None)
                # The termination listener reports a closed socket at once; the periodic
                # look covers a connection asyncpg has given up on some other way.
                while not lost.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self._liveness_interval)
                _log.warning("listener on %s lost its connection; reconnecting", self._channel)
            except Exception as exc:
                # Whatever went wrong, a fresh connection is the way back.
                _log.warning("listener on %s failed (reconnecting): %r", self._channel, exc)
                conn.terminate()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)
            finally:
                self.connected.clear()
                if conn.is_closed():
                    self._conn = None
