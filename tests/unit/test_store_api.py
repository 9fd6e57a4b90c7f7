from pathlib import Path

import pytest

from cqrskit import (
    NO_STREAM,
    AggregateNotFound,
    ConcurrencyError,
    EventRegistry,
    Position,
    Repository,
    UnitOfWork,
    open_event_store,
)
from cqrskit.store import MemoryEventStore, SqliteEventStore, sqlite_path
from cqrskit.testing import AddItem, Tally, contract_registry


@pytest.mark.parametrize(
    ("position", "token"),
    [(Position(0, 0), "0"), (Position(0, 42), "42"), (Position(987, 42), "987:42")],
)
def test_position_tokens_round_trip(position: Position, token: str) -> None:
    assert str(position) == token
    assert Position.parse(token) == position


@pytest.mark.parametrize(
    "token", ["", "abc", "1:x", "-1", "1:-3", "1:2:3", "1_000", "\u0661\u0662", str(2**63)]
)
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="consistency token"):
        Position.parse(token)


def test_positions_order_by_commit_then_seq() -> None:
    assert Position(1, 100) < Position(2, 5) < Position(2, 6)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/events.db", "data/events.db"),
        ("sqlite:////var/lib/events.db", "/var/lib/events.db"),
        ("sqlite:///events.db?synchronous=NORMAL", "events.db"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://host/x.db", "not a sqlite URL"),
        ("sqlite:///:memory:", "file path"),
        ("mysql://localhost/x", "unsupported event store URL"),
        ("sqlite:///x.db?synchronus=FULL", "unknown sqlite URL option"),
        ("sqlite:///x.db?synchronous=SOMETIMES", "synchronous must be"),
    ],
)
async def test_bad_urls_say_why(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await open_event_store(url, EventRegistry())


async def test_open_by_url(tmp_path: Path) -> None:
    assert isinstance(await open_event_store("memory://", EventRegistry()), MemoryEventStore)
    store = await open_event_store(
        f"sqlite:///{tmp_path}/a/b.db?synchronous=normal", EventRegistry()
    )
    try:
        assert isinstance(store, SqliteEventStore)
        assert (tmp_path / "a" / "b.db").exists()
    finally:
        await store.close()


async def test_repository_load_missing_and_multi_aggregate_save() -> None:
    store = MemoryEventStore(contract_registry())
    repository = Repository(store)
    with pytest.raises(AggregateNotFound, match="Tally 'nope' does not exist"):
        await repository.load(Tally, "nope")
    assert await repository.find(Tally, "nope") is None

    first, second = Tally("a"), Tally("b")
    first.add("x", 1)
    second.add("y", 2)
    result = await repository.save(first, second)
    assert result.versions == {"Tally-a": 1, "Tally-b": 1}

    stale_a = await repository.load(Tally, "a")
    fresh_b = await repository.load(Tally, "b")
    other_b = await repository.load(Tally, "b")
    other_b.add("z", 1)
    await repository.save(other_b)
    stale_a.add("x", 1)
    fresh_b.add("y", 1)  # now stale: other_b moved stream b on
    with pytest.raises(ConcurrencyError):
        await repository.save(stale_a, fresh_b)
    assert await store.stream_version("Tally-a") == 1  # all or nothing


async def test_new_aggregate_on_existing_stream_conflicts() -> None:
    store = MemoryEventStore(contract_registry())
    repository = Repository(store)
    for _ in range(2):
        tally = Tally("dup")
        tally.add("x", 1)
        if await store.stream_version("Tally-dup") == 0:
            await repository.save(tally)
        else:
            with pytest.raises(ConcurrencyError) as caught:
                await repository.save(tally)
            assert caught.value.expected == NO_STREAM


def test_snapshot_policy_needs_snapshot_support() -> None:
    from cqrskit import Aggregate

    class NoSnap(Aggregate):
        pass

    with pytest.raises(TypeError, match="snapshot_state"):
        Repository(MemoryEventStore(EventRegistry()), snapshot_every={NoSnap: 10})
    with pytest.raises(ValueError, match=">= 1"):
        Repository(MemoryEventStore(EventRegistry()), snapshot_every={Tally: 0})


async def test_unit_of_work_tracks_each_stream_once() -> None:
    store = MemoryEventStore(contract_registry())
    uow = UnitOfWork(Repository(store), AddItem(tally_id="t", name="x"))
    uow.add(Tally("t"))
    with pytest.raises(ValueError, match="already part"):
        uow.add(Tally("t"))
