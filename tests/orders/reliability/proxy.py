"""A TCP proxy the outage tests control: a dependency made unreachable for one service
under test only, while the real server (and every other test using it) carries on.

It listens on a free 127.0.0.1 port and forwards to one upstream address, in a thread
with an event loop of its own, so that synchronous and asynchronous test code alike can
cut and restore it.

- ``cut("reset")``: every open connection is closed with a TCP reset, and new ones are
  reset as soon as they are accepted (a server that went away: clients fail at once);
- ``cut("blackhole")``: open connections stay open but nothing is forwarded any more,
  and new ones are accepted and never answered (a network partition: clients fail only
  when their own timeouts say so);
- ``restore()``: forward again. Connections held during a black hole are reset (as a
  firewall that lost its state would): their traffic was dropped, they cannot go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = ["CutMode", "TcpProxy"]

CutMode = Literal["reset", "blackhole"]
T = TypeVar("T")


@dataclass(eq=False)
class _Link:
    """One client connection and, once forwarded, its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    dropping: bool = False
    """Black-holed: whatever arrives is read and thrown away."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: the peer sees ``connection reset``."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_host:upstream_port`` until cut."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode: CutMode | None = None
        self.accepted = 0
        """Connections accepted so far (forwarded or not)."""
        self.cuts = 0
        self.connections_cut = 0
        """Open connections reset or black-holed by :meth:`cut`."""
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    # -- control, from any thread -----------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def cut(self, mode: CutMode) -> int:
        """Cut the link; the number of open connections that were cut."""
        return self._call(self._cut(mode))

    def restore(self) -> None:
        self._call(self._restore())

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # -- in the proxy's loop ------------------------------------------------------------

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _cut(self, mode: CutMode) -> int:
        self.mode = mode
        self.cuts += 1
        links = list(self._links)
        for link in links:
            if mode == "reset":
                self._drop(link)
            else:
                link.dropping = True
        self.connections_cut += len(links)
        return len(links)

    async def _restore(self) -> None:
        for link in [link for link in self._links if link.dropping]:
            self._drop(link)
        self.mode = None

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            self._drop(link)
        if self._server is not None:
            await self._server.wait_closed()

    def _drop(self, link: _Link) -> None:
        self._links.discard(link)
        _reset(link.client)
        if link.upstream is not None:
            _reset(link.upstream)
        for task in link.tasks:
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "reset":
            _reset(writer)
            return
        link = _Link(writer, dropping=self.mode == "blackhole")
        self._links.add(link)
        if link.dropping:
            await self._pipe(reader, None, link)  # until restore() resets it
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self._drop(link)
            return
        if link not in self._links or link.dropping:  # cut while connecting
            up_writer.transport.abort()
            self._drop(link)
            return
        link.upstream = up_writer
        link.tasks = [
            asyncio.create_task(self._pipe(reader, up_writer, link)),
            asyncio.create_task(self._pipe(up_reader, writer, link)),
        ]

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter | None, link: _Link
    ) -> None:
        try:
            while data := await source.read(65536):
                if link.dropping or sink is None:
                    continue
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        # One side closed (or was reset): end the other side too, as a proxy does.
        if link in self._links and not link.dropping:
            self._links.discard(link)
            for writer in (link.client, link.upstream):
                if writer is not None:
                    writer.close()
