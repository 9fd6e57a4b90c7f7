"""Reads through the SQL read store that all see one moment of it."""

from __future__ import annotations

from typing import Any

from cqrskit.readstore._sql_driver import Row, SqlTransaction, Statement


class SqlSnapshot:
    """Reads that all see the store at one moment (see :meth:`SqlReadStore.snapshot`).

    SQL is run as given: ``?`` placeholders, physical table names (no ``{table}``).
    """

    def __init__(self, tx: SqlTransaction, first: list[Statement], dialect: str) -> None:
        self._tx = tx
        self._first = first
        self.dialect = dialect
        """``"sqlite"`` or ``"postgresql"``."""

    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        """Rows of a query, as of the snapshot."""
        first, self._first = self._first, []
        return await self._tx.fetch(first, sql, params)
