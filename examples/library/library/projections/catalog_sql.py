"""The ``catalog`` read model in SQL: titles, and each copy with the loan it is out on.

Used when the service runs without Redis; :mod:`library.projections.catalog_redis` keeps
the same model in Redis and answers the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from cqrskit import Projection, RecordedEvent
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork
from library.application.views import TitleView
from library.domain.events import CopyAdded, CopyLent, CopyReturned, TitleCatalogued

__all__ = ["CatalogSqlProjection", "SqlCatalogReader"]


class CatalogSqlProjection(Projection[SqlUnitOfWork]):
    """Builds ``catalog`` in SQL; read it with :class:`SqlCatalogReader`."""

    name = "catalog"
    version = 1
    handles = (TitleCatalogued, CopyAdded, CopyLent, CopyReturned)
    tables = ("titles", "copies")
    # The default policy, "stop": the Redis twin of this model applies events in order
    # only, and both must answer the same, so neither parks an event to retry it later.

    async def setup(self, uow: SqlUnitOfWork) -> None:
        """Create the tables."""
        await uow.execute(
            "CREATE TABLE {titles} (title_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "author TEXT NOT NULL)"
        )
        await uow.execute(
            "CREATE TABLE {copies} (copy_id TEXT PRIMARY KEY, title_id TEXT NOT NULL, "
            "loan_id TEXT, version BIGINT NOT NULL)"
        )
        await uow.execute("CREATE INDEX {copies}_by_title ON {copies} (title_id)")

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        """Write each event's effect; a copy's row changes only for a newer version."""
        for recorded in events:
            match recorded.event:
                case TitleCatalogued(title_id=title_id, name=name, author=author):
                    await uow.execute(
                        "INSERT INTO {titles} VALUES (?, ?, ?) ON CONFLICT (title_id) DO NOTHING",
                        title_id,
                        name,
                        author,
                    )
                case CopyAdded(copy_id=copy_id, title_id=title_id):
                    await uow.execute(
                        "INSERT INTO {copies} VALUES (?, ?, NULL, ?) "
                        "ON CONFLICT (copy_id) DO NOTHING",
                        copy_id,
                        title_id,
                        recorded.version,
                    )
                case CopyLent(copy_id=copy_id) | CopyReturned(copy_id=copy_id):
                    lent = isinstance(recorded.event, CopyLent)
                    await uow.execute(
                        "UPDATE {copies} SET loan_id = ?, version = ? "
                        "WHERE copy_id = ? AND version < ?",
                        recorded.event.loan_id if lent else None,
                        recorded.version,
                        copy_id,
                        recorded.version,
                    )


class SqlCatalogReader:
    """Answers from the SQL ``catalog`` read model (a ``CatalogReader``)."""

    def __init__(self, store: SqlReadStore) -> None:
        self.store = store

    async def title(self, title_id: str) -> TitleView | None:
        row = await self.store.fetchone(
            "catalog",
            "SELECT t.title_id, t.name, t.author, COUNT(c.copy_id) AS copies, "
            "COUNT(c.copy_id) - COUNT(c.loan_id) AS available "
            "FROM {titles} t LEFT JOIN {copies} c ON c.title_id = t.title_id "
            "WHERE t.title_id = ? GROUP BY t.title_id, t.name, t.author",
            title_id,
        )
        return None if row is None else TitleView(**dict(row))
