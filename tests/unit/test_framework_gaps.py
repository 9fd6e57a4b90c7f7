"""Typed queries, command fingerprints (a reused id is refused), expected versions, openers."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from cqrskit import (
    Command,
    CommandBus,
    ConcurrencyError,
    IdempotencyKeyReused,
    IdempotencyMiddleware,
    Metadata,
    Query,
    QueryBus,
    Repository,
    RetryOnConflict,
    UnexpectedVersion,
    UnitOfWork,
)
from cqrskit.readstore import open_redis_read_store, open_sql_read_store
from cqrskit.store import EventStore, Idempotency, open_event_store
from cqrskit.testing import AddItem, ItemAdded, Tally, contract_registry


class TotalView(BaseModel):
    tally_id: str
    total: int


class GetTotal(Query[TotalView]):
    tally_id: str


class Ping(Query):
    pass


class SetNote(Command):
    tally_id: str
    note: str
    expected_version: int | None = None


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Fingerprints change no store's schema: the same behaviour on every backend."""
    if request.param == "postgres":
        base: str = request.getfixturevalue("postgres_url")
        schema: str = request.getfixturevalue("pg_schema")
        return f"{base}{'&' if '?' in base else '?'}schema={schema}"
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/events.db"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    store = await open_event_store(store_url, contract_registry())
    yield store
    await store.close()


async def add_item(command: AddItem, uow: UnitOfWork) -> str:
    tally = await uow.find(Tally, command.tally_id) or uow.add(Tally(command.tally_id))
    tally.add(command.name, command.quantity)
    return tally.id


def same_id(command: Command, like: Command) -> Command:
    return command.with_metadata(Metadata(message_id=like.metadata.message_id))


async def test_typed_and_plain_queries_answer_through_the_bus() -> None:
    bus = QueryBus()

    async def total(query: GetTotal) -> TotalView:
        return TotalView(tally_id=query.tally_id, total=3)

    async def pong(query: Ping) -> str:
        return "pong"

    bus.register(GetTotal, total)
    bus.register(Ping, pong)
    view = await bus.ask(GetTotal(tally_id="t"))
    assert view == TotalView(tally_id="t", total=3)
    assert await bus.ask(Ping()) == "pong"
    # The type parameter adds no field: the query's schema is just its own fields.
    assert set(GetTotal.model_fields) == {"metadata", "tally_id"}


async def test_same_id_same_command_replays(store: EventStore) -> None:
    bus = CommandBus(Repository(store), [IdempotencyMiddleware(store)])
    bus.register(AddItem, add_item)
    command = AddItem(tally_id="t", name="tea")
    first = await bus.send(command)
    # A client's retry carries the same id but is a new message (new timestamp).
    again = await bus.send(same_id(AddItem(tally_id="t", name="tea"), command))
    assert (again.aggregate_id, again.position, again.replayed) == ("t", first.position, True)
    assert first.aggregate_id == "t"
    assert await store.stream_version(Tally.stream_id_for("t")) == 1


async def test_same_id_other_command_is_refused(store: EventStore) -> None:
    bus = CommandBus(Repository(store), [IdempotencyMiddleware(store)])
    bus.register(AddItem, add_item)
    command = AddItem(tally_id="t", name="tea")
    await bus.send(command)
    other = same_id(AddItem(tally_id="t", name="coffee"), command)
    with pytest.raises(IdempotencyKeyReused, match="already used for a different command"):
        await bus.send(other)
    assert await store.stream_version(Tally.stream_id_for("t")) == 1


async def test_records_without_fingerprint_still_replay(store: EventStore) -> None:
    command = AddItem(tally_id="t", name="tea")
    key = str(command.metadata.message_id)
    # As written before fingerprints existed: the plain result id.
    await store.append(
        Tally.stream_id_for("t"),
        [ItemAdded(name="tea", quantity=1)],
        0,
        idempotency=Idempotency(key, "t"),
    )
    bus = CommandBus(Repository(store), [IdempotencyMiddleware(store)])
    bus.register(AddItem, add_item)
    result = await bus.send(same_id(AddItem(tally_id="t", name="anything"), command))
    assert (result.aggregate_id, result.replayed) == ("t", True)


async def test_racing_commands_with_one_id_but_different_bodies(store: EventStore) -> None:
    both_inside = asyncio.Barrier(2)

    async def slow_add(command: AddItem, uow: UnitOfWork) -> str:
        # Both pass the idempotency look-up before either commits: the store settles it.
        await both_inside.wait()
        return await add_item(command, uow)

    bus = CommandBus(Repository(store), [IdempotencyMiddleware(store)])
    bus.register(AddItem, slow_add)
    first = AddItem(tally_id="a", name="tea")
    second = same_id(AddItem(tally_id="b", name="coffee"), first)
    outcomes = await asyncio.gather(bus.send(first), bus.send(second), return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], IdempotencyKeyReused)
    versions = [await store.stream_version(Tally.stream_id_for(t)) for t in ("a", "b")]
    assert sorted(versions) == [0, 1]


async def test_racing_repeats_of_one_command_both_answer(store: EventStore) -> None:
    both_inside = asyncio.Barrier(2)

    async def slow_add(command: AddItem, uow: UnitOfWork) -> str:
        await both_inside.wait()
        return await add_item(command, uow)

    bus = CommandBus(Repository(store), [IdempotencyMiddleware(store)])
    bus.register(AddItem, slow_add)
    command = AddItem(tally_id="a", name="tea")
    results = await asyncio.gather(bus.send(command), bus.send(same_id(command, command)))
    assert {r.aggregate_id for r in results} == {"a"}
    assert sorted(r.replayed for r in results) == [False, True]
    assert await store.stream_version(Tally.stream_id_for("a")) == 1


async def note(command: SetNote, uow: UnitOfWork) -> str:
    tally = await uow.load(Tally, command.tally_id, expected_version=command.expected_version)
    tally.add(command.note, 1)
    return tally.id


async def test_expected_version_mismatch_is_typed_and_not_retried(
    store: EventStore,
) -> None:
    calls = 0

    async def counted(command: SetNote, uow: UnitOfWork) -> str:
        nonlocal calls
        calls += 1
        return await note(command, uow)

    bus = CommandBus(Repository(store), [RetryOnConflict(attempts=3, base_delay=0.0001)])
    bus.register(AddItem, add_item)
    bus.register(SetNote, counted)
    await bus.send(AddItem(tally_id="t", name="tea"))
    await bus.send(SetNote(tally_id="t", note="a", expected_version=1))
    await bus.send(SetNote(tally_id="t", note="b"))  # no expectation: any version
    with pytest.raises(UnexpectedVersion) as caught:
        await bus.send(SetNote(tally_id="t", note="c", expected_version=2))
    error = caught.value
    assert not isinstance(error, ConcurrencyError)
    assert (error.aggregate_type, error.aggregate_id, error.expected, error.actual) == (
        Tally.category,
        "t",
        2,
        3,
    )
    assert "at version 3, not at the expected version 2" in str(error)
    assert calls == 3  # the refused one ran once
    assert await store.stream_version(Tally.stream_id_for("t")) == 3


async def test_find_with_expected_version(store: EventStore) -> None:
    uow = UnitOfWork(Repository(store), AddItem(tally_id="t", name="x"))
    assert await uow.find(Tally, "new", expected_version=0) is None
    with pytest.raises(UnexpectedVersion):
        await uow.find(Tally, "new", expected_version=1)


@pytest.mark.parametrize(
    ("opener", "url", "expected"),
    [
        (open_sql_read_store, "redis://localhost/0", "SQL read store URL"),
        (open_sql_read_store, "memory://", "SQL read store URL"),
        (open_redis_read_store, "sqlite:///read.db", "Redis read store URL"),
    ],
)
async def test_typed_openers_refuse_other_kinds(opener: Any, url: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        await opener(url)


async def test_sql_opener_opens_sqlite(tmp_path: Any) -> None:
    store = await open_sql_read_store(f"sqlite:///{tmp_path}/read.db")
    await store.close()
