"""The small driver interface under the SQL read store: what differs between SQLite and
PostgreSQL (connections, placeholders, DDL, notifications), and the statements it runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from cqrskit.readstore.base import CheckpointNews

Row = dict[str, Any]


@dataclass(slots=True)
class Statement:
    """One statement text with the parameter rows to run it with.

    ``expect_rows`` makes the statement a guard: the transaction fails unless exactly that
    many rows were affected.
    """

    sql: str
    rows: list[Sequence[Any]]
    expect_rows: int | None = None


class RowCountMismatch(Exception):
    """A guard statement affected an unexpected number of rows."""


class SqlTransaction(ABC):
    """A driver's open transaction (begun lazily by the first statement it runs)."""

    @abstractmethod
    async def run(self, statements: list[Statement]) -> None:
        """Run ``statements`` in order inside the transaction."""

    @abstractmethod
    async def fetch(self, pending: list[Statement], sql: str, params: Sequence[Any]) -> list[Row]:
        """Run ``pending``, then the query, inside the transaction."""

    @abstractmethod
    async def commit(self, statements: list[Statement]) -> None:
        """Run ``statements`` and commit."""


class SqlDriver(ABC):
    """What differs between SQLite and PostgreSQL: connections, placeholders, DDL."""

    dialect: str
    notify_channel: str | None = None

    @abstractmethod
    def begin(self) -> AbstractAsyncContextManager[SqlTransaction]:
        """A write transaction; rolled back on leaving unless committed."""

    def begin_scan(self) -> AbstractAsyncContextManager[SqlTransaction]:
        """A transaction for reads of whole tables (a verify): like :meth:`begin`, its
        queries with the longer statement limit of ``SCAN_TIMEOUT`` where there is one."""
        return self.begin()

    @abstractmethod
    async def query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """A read outside any write transaction."""

    @abstractmethod
    async def query_live(self, projection: str, sql: str, params: Sequence[Any]) -> list[Row]:
        """Resolve the live tables of ``projection`` into ``sql`` and run it, consistently."""

    def lock_statement(self, key: str) -> Statement | None:
        """A statement serialising schema changes among processes (if the database needs it)."""
        return None

    async def start_listening(  # noqa: B027 - optional hook
        self, on_change: Callable[[CheckpointNews], None]
    ) -> None:
        """Tell ``on_change`` about checkpoint changes made by other processes, as news for
        ``wait_with_signal``: ``{projection: live checkpoint}`` where known, ``None`` for
        a change that leaves the live checkpoint alone, ``CHANGED`` for a change its
        waiters must look at, ``{}`` for "everyone look"."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""
