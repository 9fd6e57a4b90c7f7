"""The repository's in-memory states (``Repository(cache_size=...)``): loads start from the
state kept at the last load or save and read only the events after it, stay exact when
others append, never share state between loads, and forget what a failed save touched."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cqrskit import ConcurrencyError, RecordedEvent, Repository
from cqrskit.store import MemoryEventStore, Snapshot
from cqrskit.testing import Tally, contract_registry


class CountingStore(MemoryEventStore):
    """Counts snapshot loads and the versions stream reads start from."""

    def __init__(self) -> None:
        super().__init__(contract_registry())
        self.snapshot_loads = 0
        self.read_from: list[int] = []

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        self.snapshot_loads += 1
        return await super().load_snapshot(stream_id)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        self.read_from.append(from_version)
        return await super().read_stream(stream_id, from_version)


async def _tally(repository: Repository, id: str, adds: int) -> Tally:
    tally = Tally(id)
    for n in range(adds):
        tally.add(f"item-{n}", 1)
    await repository.save(tally)
    return tally


async def test_a_load_after_a_save_reads_only_the_events_after_it() -> None:
    store = CountingStore()
    repository = Repository(store, snapshot_every={Tally: 100})
    await _tally(repository, "a", 5)

    loaded = await repository.load(Tally, "a")

    assert (store.snapshot_loads, store.read_from) == (0, [6])
    assert (loaded.version, loaded.items) == (5, {f"item-{n}": 1 for n in range(5)})


async def test_without_a_cache_every_load_reads_the_snapshot_and_its_tail() -> None:
    store = CountingStore()
    repository = Repository(store, snapshot_every={Tally: 100}, cache_size=0)
    await _tally(repository, "a", 5)

    await repository.load(Tally, "a")

    assert (store.snapshot_loads, store.read_from) == (1, [1])


async def test_events_appended_elsewhere_are_read_on_top_of_the_kept_state() -> None:
    store = CountingStore()
    ours = Repository(store, snapshot_every={Tally: 100})
    theirs = Repository(store, snapshot_every={Tally: 100})  # another process, say
    await _tally(ours, "a", 2)
    other = await theirs.load(Tally, "a")
    other.add("theirs", 7)
    await theirs.save(other)

    loaded = await ours.load(Tally, "a")

    assert loaded.version == 3
    assert loaded.items == {"item-0": 1, "item-1": 1, "theirs": 7}
    assert store.read_from[-1] == 3
    store.read_from.clear()
    await ours.load(Tally, "a")  # the state with their event is kept now
    assert store.read_from == [4]


async def test_each_load_gets_a_state_of_its_own() -> None:
    repository = Repository(CountingStore(), snapshot_every={Tally: 100})
    await _tally(repository, "a", 1)

    first = await repository.load(Tally, "a")
    first.items["item-0"] = 99  # changed in place, never saved
    first.notes.append("not saved")
    first.add("pending", 1)  # recorded, never saved

    again = await repository.load(Tally, "a")
    assert (again.version, again.items, again.notes) == (1, {"item-0": 1}, [])


async def test_a_save_that_loses_a_race_forgets_the_kept_state() -> None:
    store = CountingStore()
    ours = Repository(store, snapshot_every={Tally: 100})
    theirs = Repository(store, snapshot_every={Tally: 100})
    await _tally(ours, "a", 1)
    stale = await ours.load(Tally, "a")
    winner = await theirs.load(Tally, "a")
    winner.add("first", 1)
    await theirs.save(winner)

    stale.add("second", 1)
    with pytest.raises(ConcurrencyError):
        await ours.save(stale)

    store.snapshot_loads, store.read_from = 0, []
    reloaded = await ours.load(Tally, "a")
    assert (store.snapshot_loads, store.read_from) == (1, [1])
    assert reloaded.items == {"item-0": 1, "first": 1}


async def test_the_least_recently_used_state_goes_first() -> None:
    store = CountingStore()
    repository = Repository(store, snapshot_every={Tally: 100}, cache_size=2)
    for id in ("a", "b", "c"):
        await _tally(repository, id, 1)

    await repository.load(Tally, "b")
    await repository.load(Tally, "c")
    assert store.snapshot_loads == 0
    await repository.load(Tally, "a")  # dropped when c was kept
    assert store.snapshot_loads == 1


async def test_only_the_snapshotted_types_are_kept() -> None:
    store = CountingStore()
    repository = Repository(store)
    await _tally(repository, "a", 3)

    await repository.load(Tally, "a")

    assert store.read_from == [1]


class Unkeepable(Tally):
    """A snapshot state that JSON cannot hold: the committed save must still succeed."""

    category = "Unkeepable"

    def snapshot_state(self) -> dict[str, Any]:
        return {"items": self.items, "notes": self.notes, "bad": object()}


async def test_a_state_that_cannot_be_kept_does_not_fail_a_committed_save(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = CountingStore()
    repository = Repository(store, snapshot_every={Unkeepable: 100})
    tally = Unkeepable("a")
    tally.add("x", 1)

    with caplog.at_level(logging.WARNING, logger="cqrskit.repository"):
        await repository.save(tally)

    assert "could not keep the state of Unkeepable-a" in caplog.text
    assert (await store.stream_version("Unkeepable-a")) == 1
    store.read_from.clear()
    assert (await repository.load(Unkeepable, "a")).items == {"x": 1}
    assert store.read_from == [1]


def test_a_negative_cache_size_is_refused() -> None:
    with pytest.raises(ValueError, match="cache_size must be >= 0"):
        Repository(CountingStore(), cache_size=-1)
