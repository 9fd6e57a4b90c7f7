"""The ``catalog`` read model in Redis: the same answers as the SQL one.

Keys, under the live version's prefix: ``title:<title_id>`` (a hash: name, author),
``copies:<title_id>`` (the set of its copies) and ``lent:<title_id>`` (those on loan).
Sets make every write idempotent, and a copy's place is decided by its latest event, so
replaying events in order ends where it was. Out of order it would not: this model
keeps the default policy, "stop", and never parks an event to apply it later.
"""

from __future__ import annotations

from collections.abc import Sequence

from cqrskit import Projection, RecordedEvent
from cqrskit.readstore import RedisReadStore, RedisUnitOfWork
from library.application.views import TitleView
from library.domain.events import CopyAdded, CopyLent, CopyReturned, TitleCatalogued

__all__ = ["CatalogRedisProjection", "RedisCatalogReader"]


class CatalogRedisProjection(Projection[RedisUnitOfWork]):
    """Builds ``catalog`` in Redis; read it with :class:`RedisCatalogReader`."""

    name = "catalog"
    version = 1
    handles = (TitleCatalogued, CopyAdded, CopyLent, CopyReturned)

    async def handle(self, events: Sequence[RecordedEvent], uow: RedisUnitOfWork) -> None:
        """Queue each event's effect on the batch's MULTI (no await: it runs at EXEC)."""
        for recorded in events:
            match recorded.event:
                case TitleCatalogued(title_id=title_id, name=name, author=author):
                    uow.pipe.hset(
                        uow.key("title", title_id), mapping={"name": name, "author": author}
                    )
                case CopyAdded(copy_id=copy_id, title_id=title_id):
                    uow.pipe.sadd(uow.key("copies", title_id), copy_id)
                case CopyLent(copy_id=copy_id, title_id=title_id):
                    uow.pipe.sadd(uow.key("lent", title_id), copy_id)
                case CopyReturned(copy_id=copy_id, title_id=title_id):
                    uow.pipe.srem(uow.key("lent", title_id), copy_id)


class RedisCatalogReader:
    """Answers from the Redis ``catalog`` read model (a ``CatalogReader``)."""

    def __init__(self, store: RedisReadStore) -> None:
        self.store = store

    async def title(self, title_id: str) -> TitleView | None:
        prefix = await self.store.live_prefix("catalog")
        async with self.store.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(f"{prefix}title:{title_id}")
            pipe.scard(f"{prefix}copies:{title_id}")
            pipe.scard(f"{prefix}lent:{title_id}")
            fields, copies, lent = await pipe.execute()
        if not fields:
            return None
        text = {_text(k): _text(v) for k, v in fields.items()}
        return TitleView(
            title_id=title_id,
            name=text["name"],
            author=text["author"],
            copies=copies,
            available=copies - lent,
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
