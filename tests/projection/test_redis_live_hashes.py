"""RedisReadStore.live_hashes: hashes of a projection's live version read in one round
trip (what a Redis order lookup uses), following the live version across a switch."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cqrskit.readstore import RedisReadStore, RedisUnitOfWork
from cqrskit.store.base import Position

pytestmark = pytest.mark.usefixtures("redis_url")


@dataclass(frozen=True)
class Spec:
    name: str
    version: int
    tables: tuple[str, ...] = ()


async def _nothing(uow: RedisUnitOfWork) -> None:
    pass


async def _write(store: RedisReadStore, spec: Spec, value: str, *, switch: bool = False) -> None:
    async with store.transaction(spec, None) as tx:
        tx.uow.pipe.hset(tx.uow.key("order", "1"), mapping={"status": value, "n": "1"})
        tx.advance_to(Position(1, spec.version))
        if switch:
            tx.go_live()


async def test_none_before_the_projection_is_live(redis_read_store: RedisReadStore) -> None:
    assert await redis_read_store.live_hashes("orders", "order:1") is None


async def test_reads_the_live_versions_hashes(redis_read_store: RedisReadStore) -> None:
    first = Spec("orders", 1)
    await redis_read_store.prepare(first, _nothing)
    await _write(redis_read_store, first, "placed")
    found = await redis_read_store.live_hashes("orders", "order:1", "order:2")
    assert found is not None
    assert [{k: _text(v) for k, v in h.items()} for h in found] == [
        {"status": "placed", "n": "1"},
        {},
    ]
    second = Spec("orders", 2)
    await redis_read_store.prepare(second, _nothing)
    await _write(redis_read_store, second, "shipped")
    found = await redis_read_store.live_hashes("orders", "order:1")
    assert found is not None
    assert _text(found[0]["status"]) == "placed"
    await _write(redis_read_store, second, "shipped", switch=True)
    found = await redis_read_store.live_hashes("orders", "order:1")
    assert found is not None
    assert _text(found[0]["status"]) == "shipped"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
