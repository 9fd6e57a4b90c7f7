"""Repository(one_writer_at_a_time=...): commands on one hot stream queue in-process
instead of racing to the append and retrying; a wait cycle is refused, not a hang."""

from __future__ import annotations

import asyncio

import pytest

from cqrskit import CommandBus, ConcurrencyError, DomainError, RecordedEvent, Repository, UnitOfWork
from cqrskit.store import MemoryEventStore
from cqrskit.testing import AddItem, Tally, contract_registry


class SlowMemoryStore(MemoryEventStore):
    """Reads and appends yield to other tasks, as a database round trip does: without
    that, in-process commands never overlap and nothing would be contended."""

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        events = await super().read_stream(stream_id, from_version)
        await asyncio.sleep(0)
        return events


async def add_item(command: AddItem, uow: UnitOfWork) -> str:
    tally = await uow.find(Tally, command.tally_id) or uow.add(Tally(command.tally_id))
    await asyncio.sleep(0)  # the handler thinks; others run meanwhile
    tally.add(command.name, command.quantity)
    return tally.id


@pytest.fixture
def store() -> MemoryEventStore:
    return SlowMemoryStore(contract_registry())


def bus_on(repository: Repository) -> CommandBus:
    bus = CommandBus(repository)  # no RetryOnConflict: a lost race would surface
    bus.register(AddItem, add_item)
    return bus


async def test_without_it_concurrent_commands_on_one_stream_conflict(
    store: MemoryEventStore,
) -> None:
    bus = bus_on(Repository(store))
    await bus.send(AddItem(tally_id="t", name="seed"))
    outcomes = await asyncio.gather(
        *(bus.send(AddItem(tally_id="t", name=f"i{n}")) for n in range(5)),
        return_exceptions=True,
    )
    assert any(isinstance(o, ConcurrencyError) for o in outcomes)


async def test_concurrent_commands_on_one_stream_queue_and_all_succeed(
    store: MemoryEventStore,
) -> None:
    bus = bus_on(Repository(store, one_writer_at_a_time={Tally}))
    await bus.send(AddItem(tally_id="t", name="seed"))
    await asyncio.gather(*(bus.send(AddItem(tally_id="t", name=f"i{n}")) for n in range(5)))
    tally = await Repository(store).load(Tally, "t")
    assert tally.version == 6
    assert set(tally.items) == {"seed", "i0", "i1", "i2", "i3", "i4"}


async def test_a_failed_command_lets_the_next_one_in(store: MemoryEventStore) -> None:
    bus = bus_on(Repository(store, one_writer_at_a_time={Tally}))
    with pytest.raises(DomainError):
        await bus.send(AddItem(tally_id="t", name="bad", quantity=0))
    await asyncio.wait_for(bus.send(AddItem(tally_id="t", name="good")), timeout=5)


async def test_a_wait_cycle_is_refused_as_a_conflict(store: MemoryEventStore) -> None:
    repository = Repository(store, one_writer_at_a_time={Tally})
    first = UnitOfWork(repository, AddItem(tally_id="a", name="x"))
    second = UnitOfWork(repository, AddItem(tally_id="b", name="x"))
    await first.find(Tally, "a")
    await second.find(Tally, "b")
    waiting = asyncio.create_task(first.find(Tally, "b"))
    await asyncio.sleep(0)
    assert not waiting.done()  # the first waits for the second's stream
    with pytest.raises(ConcurrencyError, match="try again"):
        await second.find(Tally, "a")  # ... which would wait for the first's: a cycle
    second.close()
    await asyncio.wait_for(waiting, timeout=5)  # handed over when the second let go
    first.close()


async def test_a_cancelled_waiter_neither_holds_nor_blocks(store: MemoryEventStore) -> None:
    repository = Repository(store, one_writer_at_a_time={Tally})
    holder = UnitOfWork(repository, AddItem(tally_id="t", name="x"))
    await holder.find(Tally, "t")
    gave_up = UnitOfWork(repository, AddItem(tally_id="t", name="y"))
    waiting = asyncio.create_task(gave_up.find(Tally, "t"))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    holder.close()
    async with UnitOfWork(repository, AddItem(tally_id="t", name="z")) as next_one:
        await asyncio.wait_for(next_one.find(Tally, "t"), timeout=5)


async def test_other_types_are_not_held(store: MemoryEventStore) -> None:
    repository = Repository(store)
    first = UnitOfWork(repository, AddItem(tally_id="t", name="x"))
    second = UnitOfWork(repository, AddItem(tally_id="t", name="y"))
    await first.find(Tally, "t")
    await asyncio.wait_for(second.find(Tally, "t"), timeout=5)


async def test_a_waiter_goes_ahead_unqueued_after_the_queue_timeout(
    store: MemoryEventStore,
) -> None:
    # A holder stuck (on an unreachable store, say) must not hold everyone queued behind it.
    repository = Repository(store, one_writer_at_a_time={Tally}, queue_timeout=0.05)
    stuck = UnitOfWork(repository, AddItem(tally_id="t", name="x"))
    await stuck.find(Tally, "t")
    async with UnitOfWork(repository, AddItem(tally_id="t", name="y")) as impatient:
        await asyncio.wait_for(impatient.find(Tally, "t"), timeout=5)
    stuck.close()
    # The impatient one never held the stream: the next one gets it at once.
    async with UnitOfWork(repository, AddItem(tally_id="t", name="z")) as next_one:
        await asyncio.wait_for(next_one.find(Tally, "t"), timeout=0.04)
