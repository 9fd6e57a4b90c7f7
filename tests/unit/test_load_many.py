"""UnitOfWork.load_many: several aggregates of one type read concurrently (an order's
products), held one by one in sorted order first, failing as loading them in turn would."""

from __future__ import annotations

import asyncio

import pytest

from cqrskit import AggregateNotFound, RecordedEvent, Repository, UnitOfWork
from cqrskit.store import MemoryEventStore
from cqrskit.testing import AddItem, Tally, contract_registry


class CountingStore(MemoryEventStore):
    """Counts the reads in flight at once; each read yields, as a round trip does."""

    def __init__(self) -> None:
        super().__init__(contract_registry())
        self.in_flight = self.most_in_flight = 0

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            return await super().read_stream(stream_id, from_version)
        finally:
            self.in_flight -= 1


async def _tallies(repository: Repository, *ids: str) -> None:
    for id in ids:
        tally = Tally(id)
        tally.add("seed", 1)
        await repository.save(tally)


def _uow(repository: Repository) -> UnitOfWork:
    return UnitOfWork(repository, AddItem(tally_id="t", name="x"))


async def test_reads_run_concurrently_and_are_tracked() -> None:
    store = CountingStore()
    repository = Repository(store, one_writer_at_a_time={Tally})
    await _tallies(repository, "a", "b", "c")
    async with _uow(repository) as uow:
        loaded = await uow.load_many(Tally, ["c", "a", "b"])
        assert list(loaded) == ["a", "b", "c"]
        assert store.most_in_flight == 3
        for tally in loaded.values():
            tally.add("more", 1)
        await uow.commit("t")
    assert (await repository.load(Tally, "b")).version == 2


async def test_the_first_missing_in_sorted_order_is_raised() -> None:
    repository = Repository(CountingStore())
    await _tallies(repository, "b")
    async with _uow(repository) as uow:
        with pytest.raises(AggregateNotFound) as raised:
            await uow.load_many(Tally, ["d", "b", "c"])
    assert raised.value.aggregate_id == "c"


async def test_two_units_asking_in_opposite_orders_do_not_wait_for_each_other() -> None:
    repository = Repository(CountingStore(), one_writer_at_a_time={Tally})
    await _tallies(repository, "a", "b")

    async def load_then_close(ids: list[str]) -> None:
        async with _uow(repository) as uow:
            await uow.load_many(Tally, ids)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(
        asyncio.gather(load_then_close(["a", "b"]), load_then_close(["b", "a"])), timeout=5
    )
