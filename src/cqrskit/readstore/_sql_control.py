"""Control records in the SQL read store: one value per projection and kind, for
published statuses and rebuild requests between processes."""

from __future__ import annotations

from datetime import datetime

from cqrskit.readstore._sql_bookkeeping import _now
from cqrskit.readstore._sql_driver import SqlDriver, Statement


class _SqlControls:
    """The control-record part of :class:`~cqrskit.readstore.sql.SqlReadStore`."""

    _driver: SqlDriver

    async def put_control(self, projection: str, kind: str, value: str) -> None:
        """Keep a control record (see :meth:`ReadStore.put_control`)."""
        async with self._driver.begin() as tx:
            await tx.commit(
                [
                    Statement(
                        "INSERT INTO cqrskit_control (projection, kind, value, updated_at) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (projection, kind) DO UPDATE SET "
                        "value = excluded.value, updated_at = excluded.updated_at",
                        [(projection, kind, value, _now())],
                    )
                ]
            )

    async def controls(self, kind: str) -> dict[str, tuple[str, datetime]]:
        """Every projection's control record of ``kind``."""
        rows = await self._driver.query(
            "SELECT projection, value, updated_at FROM cqrskit_control WHERE kind = ?", (kind,)
        )
        return {
            r["projection"]: (r["value"], datetime.fromisoformat(r["updated_at"])) for r in rows
        }

    async def take_control(self, projection: str, kind: str) -> str | None:
        """Remove and return a control record; the DELETE decides who gets it."""
        # Runners look every second and there is rarely anything: read before writing.
        if not await self._driver.query(
            "SELECT 1 AS one FROM cqrskit_control WHERE projection = ? AND kind = ?",
            (projection, kind),
        ):
            return None
        async with self._driver.begin() as tx:
            rows = await tx.fetch(
                [],
                "DELETE FROM cqrskit_control WHERE projection = ? AND kind = ? RETURNING value",
                (projection, kind),
            )
            await tx.commit([])
        return str(rows[0]["value"]) if rows else None
