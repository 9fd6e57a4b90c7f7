import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from cqrskit import (
    AppendResult,
    Command,
    CommandBus,
    CommandResult,
    ConcurrencyError,
    Context,
    DomainError,
    DuplicateHandler,
    EventRegistry,
    HandlerNotFound,
    IdempotencyMiddleware,
    LoggingMiddleware,
    Query,
    QueryBus,
    Repository,
    RetryOnConflict,
    UnitOfWork,
)
from cqrskit.store import MemoryEventStore
from cqrskit.testing import AddItem, CommandScenario, ItemAdded, Noted, Tally, contract_registry


class GetTotal(Query):
    tally_id: str


class Unknown(Command):
    pass


async def add_item(command: AddItem, uow: UnitOfWork) -> str:
    tally = await uow.find(Tally, command.tally_id) or uow.add(Tally(command.tally_id))
    tally.add(command.name, command.quantity)
    return tally.id


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore(contract_registry())


async def test_command_is_one_atomic_append_with_lineage(store: MemoryEventStore) -> None:
    bus = CommandBus(Repository(store))
    bus.register(AddItem, add_item)
    command = AddItem(tally_id="t1", name="tea", quantity=2)
    result = await bus.send(command)
    assert result == CommandResult("t1", await store.head())
    assert result.token == str(result.position)
    [recorded] = await store.read_stream(Tally.stream_id_for("t1"))
    assert recorded.event.metadata.causation_id == command.metadata.message_id
    assert recorded.event.metadata.correlation_id == command.metadata.correlation_id


async def test_one_handler_per_type(store: MemoryEventStore) -> None:
    bus = CommandBus(Repository(store))
    bus.register(AddItem, add_item)
    with pytest.raises(DuplicateHandler, match="AddItem"):
        bus.register(AddItem, add_item)
    with pytest.raises(HandlerNotFound, match="Unknown"):
        await bus.send(Unknown())
    queries = QueryBus()
    with pytest.raises(HandlerNotFound, match="GetTotal"):
        await queries.ask(GetTotal(tally_id="x"))


async def test_query_bus_runs_middleware_in_order() -> None:
    calls: list[str] = []

    def tag(name: str) -> Callable[[Context[Query], Callable[..., Awaitable[int]]], Awaitable[int]]:
        async def middleware(
            context: Context[Query], call_next: Callable[..., Awaitable[int]]
        ) -> int:
            calls.append(f"{name}>")
            result = await call_next(context)
            calls.append(f"<{name}")
            return result + 1

        return middleware

    bus = QueryBus([tag("outer"), tag("inner")])

    async def total(query: GetTotal) -> int:
        calls.append("handler")
        return 40

    bus.register(GetTotal, total)
    assert await bus.ask(GetTotal(tally_id="x")) == 42
    assert calls == ["outer>", "inner>", "handler", "<inner", "<outer"]
    with pytest.raises(DuplicateHandler):
        bus.register(GetTotal, total)


async def test_retry_reloads_and_succeeds_after_conflicts(store: MemoryEventStore) -> None:
    bus = CommandBus(Repository(store), [RetryOnConflict(attempts=5, base_delay=0.001)])
    bus.register(AddItem, add_item)
    await bus.send(AddItem(tally_id="t", name="seed"))
    results = await asyncio.gather(
        *(bus.send(AddItem(tally_id="t", name=f"i{n}")) for n in range(5))
    )
    assert len({r.position for r in results}) == 5
    tally = await Repository(store).load(Tally, "t")
    assert tally.version == 6
    assert set(tally.items) == {"seed", "i0", "i1", "i2", "i3", "i4"}


async def test_retry_gives_up_after_its_attempts(store: MemoryEventStore) -> None:
    tries = 0

    async def always_conflicts(command: AddItem, uow: UnitOfWork) -> str:
        nonlocal tries
        tries += 1
        raise ConcurrencyError("s", 1, 2)

    bus = CommandBus(Repository(store), [RetryOnConflict(attempts=3, base_delay=0.0001)])
    bus.register(AddItem, always_conflicts)
    with pytest.raises(ConcurrencyError):
        await bus.send(AddItem(tally_id="t", name="x"))
    assert tries == 3


async def test_retry_counts_lost_races_in_its_registry(store: MemoryEventStore) -> None:
    losses = {"won on the second try": 1, "never won": 2}

    async def loses_at_first(command: AddItem, uow: UnitOfWork) -> str:
        if losses[command.name] > 0:
            losses[command.name] -= 1
            raise ConcurrencyError("s", 1, 2)
        return await add_item(command, uow)

    registry = CollectorRegistry()
    retry = RetryOnConflict(attempts=2, base_delay=0.0001, registry=registry)
    bus = CommandBus(Repository(store), [retry])
    bus.register(AddItem, loses_at_first)
    await bus.send(AddItem(tally_id="t", name="won on the second try"))
    with pytest.raises(ConcurrencyError):
        await bus.send(AddItem(tally_id="t", name="never won"))

    def count(outcome: str) -> float | None:
        labels = {"command": "AddItem", "outcome": outcome}
        return registry.get_sample_value("cqrskit_command_conflicts_total", labels)

    assert (count("retried"), count("gave_up")) == (2.0, 1.0)


async def test_idempotent_commands_and_domain_errors(store: MemoryEventStore) -> None:
    bus = CommandBus(Repository(store), [IdempotencyMiddleware(store)])
    bus.register(AddItem, add_item)
    bad = AddItem(tally_id="t", name="x", quantity=0)
    with pytest.raises(DomainError):
        await bus.send(bad)
    assert await store.find_idempotent(str(bad.metadata.message_id)) is None
    good = AddItem(tally_id="t", name="x")
    first = await bus.send(good)
    second = await bus.send(good)
    assert (second.aggregate_id, second.position, second.replayed) == ("t", first.position, True)
    assert await store.stream_version(Tally.stream_id_for("t")) == 1


async def test_only_a_failing_command_looks_up_its_idempotency_record(
    store: MemoryEventStore,
) -> None:
    lookups: list[str] = []
    find_idempotent = store.find_idempotent

    async def counted(key: str) -> AppendResult | None:
        lookups.append(key)
        return await find_idempotent(key)

    async def add_new_item(command: AddItem, uow: UnitOfWork) -> str:
        tally = await uow.find(Tally, command.tally_id) or uow.add(Tally(command.tally_id))
        if command.name in tally.items:
            raise DomainError(f"{command.name} is already there")
        tally.add(command.name, command.quantity)
        return tally.id

    store.find_idempotent = counted  # type: ignore[method-assign]
    bus = CommandBus(Repository(store), [IdempotencyMiddleware(store)])
    bus.register(AddItem, add_item)
    command = AddItem(tally_id="t", name="x")
    first = await bus.send(command)
    assert lookups == []
    # A repeat that runs to its append is recognised there, by the store: nothing written.
    again = await bus.send(command)
    assert (again.aggregate_id, again.position, again.replayed) == ("t", first.position, True)
    assert lookups == []
    # A repeat whose handler now refuses (the item is there) is answered from the record.
    strict = CommandBus(Repository(store), [IdempotencyMiddleware(store)])
    strict.register(AddItem, add_new_item)
    third = await strict.send(command)
    assert (third.aggregate_id, third.position, third.replayed) == ("t", first.position, True)
    assert lookups == [str(command.metadata.message_id)]
    # A new command that fails looks, finds nothing, and raises its own error.
    with pytest.raises(DomainError, match="already there"):
        await strict.send(AddItem(tally_id="t", name="x"))
    assert await store.stream_version(Tally.stream_id_for("t")) == 1


async def test_a_command_failing_for_want_of_a_store_looks_nothing_up(
    store: MemoryEventStore,
) -> None:
    lookups: list[str] = []

    async def counted(key: str) -> AppendResult | None:
        lookups.append(key)
        return None

    async def store_down(command: AddItem, uow: UnitOfWork) -> str:
        raise ConnectionError("the store is down")

    store.find_idempotent = counted  # type: ignore[method-assign]
    bus = CommandBus(Repository(store), [IdempotencyMiddleware(store)])
    bus.register(AddItem, store_down)
    with pytest.raises(ConnectionError):
        await bus.send(AddItem(tally_id="t", name="x"))
    # Asking the store that is down would make the caller wait for it a second time.
    assert lookups == []


async def test_logging_middleware_records_correlation(
    store: MemoryEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    bus = CommandBus(Repository(store), [LoggingMiddleware()])
    bus.register(AddItem, add_item)
    command = AddItem(tally_id="t", name="x")
    with caplog.at_level(logging.INFO, logger="cqrskit.bus"):
        await bus.send(command)
        with pytest.raises(DomainError):
            await bus.send(AddItem(tally_id="t", name="x", quantity=-1))
    ok, failed = caplog.records
    assert ok.correlation_id == str(command.metadata.correlation_id)  # type: ignore[attr-defined]
    assert ok.outcome == "ok"  # type: ignore[attr-defined]
    assert failed.outcome == "DomainError"  # type: ignore[attr-defined]
    # A refusal is an outcome, logged without a traceback; faults stay warnings.
    assert failed.levelno == logging.INFO
    assert failed.exc_info is None


async def test_command_scenario() -> None:
    scenario = CommandScenario(contract_registry(), {AddItem: add_item})
    await scenario.given(Tally, "t", ItemAdded(name="a", quantity=1)).when(
        AddItem(tally_id="t", name="b", quantity=2)
    )
    await scenario.then({(Tally, "t"): [ItemAdded(name="b", quantity=2)]})
    with pytest.raises(AssertionError):
        await scenario.then({(Tally, "t"): [Noted(text="no")]})
    failing = CommandScenario(contract_registry(), {AddItem: add_item})
    await failing.when(AddItem(tally_id="t", name="b", quantity=0))
    await failing.then_raises(DomainError, match="positive")


async def test_command_scenario_given_twice_for_one_stream_continues_it() -> None:
    scenario = CommandScenario(contract_registry(), {AddItem: add_item})
    scenario.given(Tally, "t", ItemAdded(name="a", quantity=1))
    scenario.given(Tally, "t", ItemAdded(name="b", quantity=1))
    await scenario.when(AddItem(tally_id="t", name="c", quantity=2))
    await scenario.then({(Tally, "t"): [ItemAdded(name="c", quantity=2)]})
    history = await scenario.store.read_stream(Tally.stream_id_for("t"))
    assert [e.event.name for e in history] == ["a", "b", "c"]  # type: ignore[attr-defined]


def test_registry_keeps_one_class_per_name() -> None:
    registry = EventRegistry([ItemAdded])

    class Other(Noted):
        event_type = "contract.ItemAdded"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Other)
    registry.add_upcaster("x", 1, dict)
    with pytest.raises(ValueError, match="already exists"):
        registry.add_upcaster("x", 1, dict)
