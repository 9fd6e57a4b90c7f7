"""A sqlite3 connection confined to one thread of its own: the one way cqrskit talks to SQLite.

The event store and the SQL read store each keep a writer and a reader connection. Work
runs as a plain function on the connection's thread, so a whole transaction takes one hop
from the event loop and the loop never blocks on disk.

The hop is a dedicated thread fed through a queue, not an executor: profiled, a
``run_in_executor`` round trip cost ~70-100 µs per call here (the executor's work item,
a ``concurrent.futures.Future`` and its lock, its callbacks, then a second future on the
loop), twice what a bare queue and one ``call_soon_threadsafe`` cost. Jobs are taken in
batches (:attr:`ThreadConnection.max_batch`), so that a subclass can run several together
(the event store's group commit) and the loop is woken once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def open_connection(
    path: str, synchronous: str, *, rows_as_mappings: bool = False
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, 30 s busy timeout."""
    db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    if rows_as_mappings:
        db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA busy_timeout=30000")
    return db


class Job(Generic[T]):
    """One piece of work for the connection's thread and the future its caller awaits.

    :meth:`execute` runs on the thread and keeps the outcome; :meth:`deliver` runs on the
    caller's loop and hands it over.
    """

    __slots__ = ("error", "future", "loop", "value")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[T] = loop.create_future()
        self.value: T | None = None
        self.error: BaseException | None = None

    def execute(self, db: sqlite3.Connection) -> None:
        """Do the work with ``db`` (on the connection's thread), keeping value or error."""
        raise NotImplementedError

    def deliver(self) -> None:
        """Resolve the caller's future (on its loop), unless the caller gave up waiting."""
        if self.future.done():  # cancelled: the work was done all the same
            return
        if self.error is not None:
            self.future.set_exception(self.error)
            self.error = None  # the future holds it now; no cycle through this job
        else:
            self.future.set_result(self.value)  # type: ignore[arg-type]


class _Call(Job[T]):
    __slots__ = ("fn",)

    def __init__(self, loop: asyncio.AbstractEventLoop, fn: Callable[[sqlite3.Connection], T]):
        super().__init__(loop)
        self.fn = fn

    def execute(self, db: sqlite3.Connection) -> None:
        try:
            self.value = self.fn(db)
        except BaseException as exc:
            self.error = exc


class _Close(Job[None]):
    """Ends the serving loop, which closes the connection (if it ever opened)."""

    __slots__ = ()


class ThreadConnection:
    """One sqlite3 connection (WAL, autocommit mode, 30 s busy timeout) on its own thread.

    The thread starts, and the connection opens on it, at the first :meth:`run`; a
    connection that cannot be opened fails that call (and the next one tries again). The
    thread is a daemon: a handle never closed does not keep the process alive, and a
    process that ends mid-commit leaves the file as a crash would, which SQLite survives.
    """

    max_batch = 1
    """The most queued jobs taken (and delivered) together. One for plain connections:
    a read's result is handed back at once rather than after the reads queued behind it."""

    def __init__(
        self, path: str, synchronous: str, name: str, *, rows_as_mappings: bool = False
    ) -> None:
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        self._path = path
        self._synchronous = synchronous
        self._rows_as_mappings = rows_as_mappings
        self._name = name
        self._jobs: queue.SimpleQueue[Job[Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the connection, on the connection's thread."""
        return await self.submit(_Call(asyncio.get_running_loop(), fn))

    def submit(self, job: Job[T]) -> asyncio.Future[T]:
        """Queue ``job`` for the connection's thread; its future resolves on its loop."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._jobs.put(job)
        return job.future

    async def close(self) -> None:
        """Close the connection and stop its thread, after the jobs queued before."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        await self.submit(_Close(asyncio.get_running_loop()))
        thread.join()  # it has delivered the close: it is returning, a matter of µs

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_connection(
                self._path, self._synchronous, rows_as_mappings=self._rows_as_mappings
            )
        return self._db

    def _serve(self) -> None:
        closing = False
        while not closing:
            batch = [self._jobs.get()]
            # Whatever else is queued joins the batch; nothing waits for company. (This
            # thread alone takes from the queue: when it is not empty, a get cannot block.)
            while (
                len(batch) < self.max_batch
                and not self._jobs.empty()
                and not isinstance(batch[-1], _Close)
            ):
                batch.append(self._jobs.get())
            closing = isinstance(batch[-1], _Close)
            work = batch[:-1] if closing else batch
            if work:
                try:
                    self.run_batch(self._connection(), work)
                except BaseException as exc:  # the connection would not open
                    for job in work:
                        job.error = exc
            if closing and self._db is not None:
                self._db.close()
                self._db = None
            _deliver(batch)

    def run_batch(self, db: sqlite3.Connection, batch: list[Job[Any]]) -> None:
        """Execute a batch of jobs with ``db``, on the thread; one by one unless overridden."""
        for job in batch:
            job.execute(db)


def _deliver(batch: list[Job[Any]]) -> None:
    """Hand a batch's outcomes to their loops: one wake-up per loop, not one per job."""
    if len(batch) == 1:  # the common case, a lone job: no grouping by loop to do
        with contextlib.suppress(RuntimeError):
            batch[0].loop.call_soon_threadsafe(_deliver_all, batch)
        return
    by_loop: dict[asyncio.AbstractEventLoop, list[Job[Any]]] = {}
    for job in batch:
        by_loop.setdefault(job.loop, []).append(job)
    for loop, jobs in by_loop.items():
        # A closed loop raises RuntimeError: nobody is waiting there any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_deliver_all, jobs)


def _deliver_all(jobs: list[Job[Any]]) -> None:
    for job in jobs:
        job.deliver()
