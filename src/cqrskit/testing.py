"""Testing helpers: given/when/then scenarios and the event-store contract suite.

Needs the ``testing`` extra (pytest, pytest-asyncio, hypothesis).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Self, TypeVar

try:
    import pytest
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError('cqrskit.testing needs pytest: pip install "cqrskit[testing]"') from exc

from cqrskit._store_contract_input import BadInputContract, Measured
from cqrskit.aggregate import Aggregate
from cqrskit.bus import CommandBus, CommandHandler, CommandResult
from cqrskit.errors import ConcurrencyError, DomainError, EventStoreClosed, UnknownEventType
from cqrskit.messages import Command, DomainEvent, Metadata
from cqrskit.middleware import IdempotencyMiddleware
from cqrskit.repository import Repository, UnitOfWork
from cqrskit.store.base import (
    ANY,
    NO_STREAM,
    START,
    EventStore,
    Idempotency,
    RecordedEvent,
    StreamAppend,
)
from cqrskit.store.memory import MemoryEventStore
from cqrskit.store.serialization import EventRegistry

__all__ = [
    "AggregateScenario",
    "CommandScenario",
    "EventStoreContract",
    "StoreOpener",
    "event_payloads",
]

A = TypeVar("A", bound=Aggregate)
C = TypeVar("C", bound=Command)


def event_payloads(events: Sequence[DomainEvent]) -> list[tuple[str, dict[str, Any]]]:
    """Events as (type name, payload) pairs, metadata left out, for comparing in tests."""
    return [(e.event_type, e.model_dump(exclude={"metadata"})) for e in events]


class AggregateScenario:
    """Given past events, when a domain method runs, then these events (or this error).

    >>> AggregateScenario(Order, "o-1").given(OrderPlaced(...)).when(
    ...     lambda order: order.ship()).then(OrderShipped(...))
    """

    def __init__(self, cls: type[A], id: str = "test") -> None:
        self._cls: type[Aggregate] = cls
        self._id = id
        self._history: list[DomainEvent] = []
        self._new: list[DomainEvent] | None = None
        self._error: Exception | None = None
        self.aggregate: Aggregate | None = None

    def given(self, *events: DomainEvent) -> Self:
        """Events already in the aggregate's stream."""
        self._history.extend(events)
        return self

    def when(self, action: Callable[[Any], object]) -> Self:
        """Run ``action`` on the aggregate rebuilt from the given events (or a new one)."""
        aggregate = self._cls.from_events(self._id, self._history)
        self.aggregate = aggregate
        try:
            action(aggregate)
        except DomainError as exc:
            self._error = exc
        self._new = aggregate.collect_events()
        return self

    def then(self, *expected: DomainEvent) -> Self:
        """Assert that exactly ``expected`` were recorded (metadata ignored)."""
        if self._error is not None:
            raise AssertionError(f"expected events, but the action raised {self._error!r}")
        assert self._new is not None, "call when() before then()"
        assert event_payloads(self._new) == event_payloads(expected)
        return self

    def then_raises(self, error: type[DomainError], match: str | None = None) -> Self:
        """Assert that the action raised ``error`` and recorded nothing."""
        if self._error is None:
            raise AssertionError(f"expected {error.__name__}, but events were {self._new!r}")
        assert isinstance(self._error, error), f"raised {self._error!r}, not {error.__name__}"
        if match is not None:
            assert match in str(self._error), f"{match!r} not in {str(self._error)!r}"
        assert not self._new, "events were recorded before the domain error"
        return self


class CommandScenario:
    """Given events in streams, when a command goes through a real bus, then new events.

    Runs on an in-memory event store with the idempotency middleware, so handlers are
    exercised exactly as in production.
    """

    def __init__(
        self, registry: EventRegistry, handlers: Mapping[type[Command], CommandHandler[Any]]
    ) -> None:
        self.store = MemoryEventStore(registry)
        self.bus = CommandBus(Repository(self.store), [IdempotencyMiddleware(self.store)])
        for command_type, handler in handlers.items():
            self.bus.register(command_type, handler)
        self._given: list[StreamAppend] = []
        self._seen = START
        self.result: CommandResult | None = None
        self.error: Exception | None = None

    def given(self, cls: type[Aggregate], id: str, *events: DomainEvent) -> Self:
        """Events already in the stream of aggregate ``cls``/``id``; called again for the
        same stream, the events follow those given before."""
        stream_id = cls.stream_id_for(id)
        for n, earlier in enumerate(self._given):
            if earlier.stream_id == stream_id:
                self._given[n] = StreamAppend(stream_id, [*earlier.events, *events])
                return self
        self._given.append(StreamAppend(stream_id, events))
        return self

    async def when(self, command: Command) -> Self:
        """Store the given events, then send ``command``; its error is kept for then_raises."""
        if self._given:
            await self.store.append_many(self._given)
            self._given = []
        self._seen = await self.store.head()
        try:
            self.result = await self.bus.send(command)
        except DomainError as exc:
            self.error = exc
        return self

    async def new_events(self) -> list[RecordedEvent]:
        """Every event appended by ``when``."""
        return await self.store.read_all(self._seen, limit=1_000_000)

    async def then(
        self, expected: Mapping[tuple[type[Aggregate], str], Sequence[DomainEvent]]
    ) -> Self:
        """Assert the new events, by aggregate, are exactly ``expected``."""
        if self.error is not None:
            raise AssertionError(f"expected events, but the command raised {self.error!r}")
        by_stream: dict[str, list[DomainEvent]] = {}
        for recorded in await self.new_events():
            by_stream.setdefault(recorded.stream_id, []).append(recorded.event)
        wanted = {cls.stream_id_for(id): list(evs) for (cls, id), evs in expected.items()}
        assert {s: event_payloads(e) for s, e in by_stream.items()} == {
            s: event_payloads(e) for s, e in wanted.items() if e
        }
        return self

    async def then_raises(self, error: type[DomainError], match: str | None = None) -> Self:
        """Assert the command raised ``error`` and appended nothing."""
        assert isinstance(self.error, error), f"expected {error.__name__}, got {self.error!r}"
        if match is not None:
            assert match in str(self.error), f"{match!r} not in {str(self.error)!r}"
        assert await self.new_events() == []
        return self


# --------------------------------------------------------------------------------------
# The event-store contract suite

StoreOpener = Callable[[EventRegistry], Awaitable[EventStore]]
"""Opens a handle on one test's store; every handle it opens sees the same data."""


class ItemAdded(DomainEvent):
    """Contract-suite event, at schema version 2 (v1 had no ``quantity``)."""

    event_type = "contract.ItemAdded"
    schema_version = 2
    name: str
    quantity: int


class _ItemAddedV1(DomainEvent):
    event_type = "contract.ItemAdded"
    name: str


class Noted(DomainEvent):
    """Contract-suite event."""

    event_type = "contract.Noted"
    text: str


class _Unregistered(DomainEvent):
    event_type = "contract.Unregistered"


def contract_registry() -> EventRegistry:
    """The registry the contract suite's stores are opened with."""
    registry = EventRegistry([ItemAdded, Noted, Measured])
    registry.add_upcaster("contract.ItemAdded", 1, lambda old: {**old, "quantity": 1})
    return registry


class Tally(Aggregate):
    """Contract-suite aggregate: counts and totals items; supports snapshots."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.items: dict[str, int] = {}
        self.notes: list[str] = []

    def add(self, name: str, quantity: int) -> None:
        if quantity < 1:
            raise DomainError("quantity must be positive")
        self.record(ItemAdded(name=name, quantity=quantity))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case ItemAdded(name=name, quantity=quantity):
                self.items[name] = self.items.get(name, 0) + quantity
            case Noted(text=text):
                self.notes.append(text)
            case _:
                super().apply(event)

    def snapshot_state(self) -> dict[str, Any]:
        return {"items": self.items, "notes": self.notes}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.items = dict(state["items"])
        self.notes = list(state["notes"])


class AddItem(Command):
    """Contract-suite command."""

    tally_id: str
    name: str
    quantity: int = 1


async def _add_item(command: AddItem, uow: UnitOfWork) -> str:
    tally = await uow.find(Tally, command.tally_id) or uow.add(Tally(command.tally_id))
    tally.add(command.name, command.quantity)
    return tally.id


def _note(text: str) -> Noted:
    return Noted(text=text)


def _stream() -> str:
    # Unique per test and per example, so tests never see each other's streams.
    return f"contract-{uuid.uuid4().hex}"


class EventStoreContract(BadInputContract):
    """What every event store must do. Bind it once per backend::

    class TestMyStore(EventStoreContract):
        @pytest.fixture
        async def open_store(self) -> AsyncIterator[StoreOpener]:
            ...  # yield an opener whose stores share one empty database; close them after
    """

    concurrent_writers: ClassVar[int] = 50

    @pytest.fixture
    def open_store(self) -> StoreOpener:
        """Bind this fixture: it returns an opener of stores that share one database."""
        raise NotImplementedError("bind open_store for your backend")

    @pytest.fixture
    async def store(self, open_store: StoreOpener) -> EventStore:
        return await open_store(contract_registry())

    # -- expected versions ------------------------------------------------------------

    async def test_no_stream_creates_and_then_conflicts(self, store: EventStore) -> None:
        stream = _stream()
        result = await store.append(stream, [_note("a"), _note("b")], NO_STREAM)
        assert result.version == 2
        assert result.versions == {stream: 2}
        with pytest.raises(ConcurrencyError) as caught:
            await store.append(stream, [_note("c")], NO_STREAM)
        assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (
            stream,
            NO_STREAM,
            2,
        )
        assert await store.stream_version(stream) == 2

    async def test_exact_version(self, store: EventStore) -> None:
        stream = _stream()
        await store.append(stream, [_note("a")], NO_STREAM)
        assert (await store.append(stream, [_note("b")], 1)).version == 2
        with pytest.raises(ConcurrencyError) as caught:
            await store.append(stream, [_note("c")], 1)
        assert (caught.value.expected, caught.value.actual) == (1, 2)
        with pytest.raises(ConcurrencyError):
            await store.append(_stream(), [_note("x")], 3)

    async def test_any_version(self, store: EventStore) -> None:
        stream = _stream()
        assert (await store.append(stream, [_note("a")], ANY)).version == 1
        assert (await store.append(stream, [_note("b"), _note("c")], ANY)).version == 3

    async def test_conflict_writes_nothing(self, store: EventStore) -> None:
        stream = _stream()
        await store.append(stream, [_note("a")])
        head = await store.head()
        with pytest.raises(ConcurrencyError):
            await store.append(stream, [_note("b"), _note("c")], 5)
        assert [getattr(r.event, "text", None) for r in await store.read_stream(stream)] == ["a"]
        assert await store.read_all(head) == []
        assert await store.stream_version(stream) == 1

    async def test_bad_arguments_are_rejected(self, store: EventStore) -> None:
        with pytest.raises(ValueError, match="stream id"):
            await store.append("", [_note("a")])
        with pytest.raises(ValueError, match="expected version"):
            await store.append(_stream(), [_note("a")], -7)
        stream = _stream()
        with pytest.raises(ValueError, match="twice"):
            await store.append_many([StreamAppend(stream, [_note("a")]), StreamAppend(stream, [])])
        with pytest.raises(UnknownEventType, match=r"contract\.Unregistered"):
            await store.append(_stream(), [_Unregistered()])

    # -- multi-stream appends ---------------------------------------------------------

    async def test_multi_stream_append_is_atomic(self, store: EventStore) -> None:
        first, second, third = _stream(), _stream(), _stream()
        await store.append(second, [_note("s1")])
        head = await store.head()
        with pytest.raises(ConcurrencyError) as caught:
            await store.append_many(
                [
                    StreamAppend(first, [_note("f1")], NO_STREAM),
                    StreamAppend(second, [_note("s2")], 7),
                    StreamAppend(third, [_note("t1")], NO_STREAM),
                ]
            )
        assert caught.value.stream_id == second
        assert await store.read_all(head) == []
        assert [await store.stream_version(s) for s in (first, second, third)] == [0, 1, 0]

        result = await store.append_many(
            [
                StreamAppend(third, [_note("t1"), _note("t2")], NO_STREAM),
                StreamAppend(second, [_note("s2")], 1),
                StreamAppend(first, [_note("f1")], NO_STREAM),
            ]
        )
        assert list(result.versions.items()) == [(third, 2), (second, 2), (first, 1)]
        written = await store.read_all(head)
        assert len(written) == 4
        assert result.position == written[-1].position
        assert {(r.stream_id, r.version) for r in written} == {
            (third, 1),
            (third, 2),
            (second, 2),
            (first, 1),
        }

    # -- reading ----------------------------------------------------------------------

    async def test_read_all_follows_append_order(self, store: EventStore) -> None:
        head = await store.head()
        streams = [_stream() for _ in range(3)]
        written: list[tuple[str, str]] = []
        for i in range(12):
            stream = streams[i % 3]
            text = f"e{i}"
            result = await store.append(stream, [_note(text)])
            written.append((stream, text))
            assert result.position > head
        events = await store.read_all(head, limit=100)
        assert [(r.stream_id, getattr(r.event, "text", None)) for r in events] == written
        positions = [r.position for r in events]
        assert positions == sorted(positions)
        assert len(set(positions)) == len(positions)
        assert await store.head() == positions[-1]
        paged: list[RecordedEvent] = []
        after = head
        while page := await store.read_all(after, limit=5):
            assert len(page) <= 5
            paged.extend(page)
            after = page[-1].position
        assert [r.position for r in paged] == positions

    async def test_read_stream_from_version(self, store: EventStore) -> None:
        stream = _stream()
        await store.append(stream, [_note(str(i)) for i in range(1, 6)])
        tail = await store.read_stream(stream, from_version=3)
        assert [r.version for r in tail] == [3, 4, 5]
        assert [getattr(r.event, "text", None) for r in tail] == ["3", "4", "5"]
        assert await store.read_stream(_stream()) == []
        assert await store.stream_version(_stream()) == 0

    async def test_metadata_round_trips(self, store: EventStore) -> None:
        parent = Metadata(user_id="alice")
        event = Noted(text="hi", metadata=parent.caused())
        stream = _stream()
        await store.append(stream, [event])
        [recorded] = await store.read_stream(stream)
        assert recorded.event == event
        assert recorded.event.metadata.correlation_id == parent.message_id
        assert recorded.event.metadata.causation_id == parent.message_id
        assert recorded.event.metadata.user_id == "alice"
        assert recorded.event.metadata.timestamp.utcoffset() is not None
        assert recorded.recorded_at.utcoffset() is not None

    async def test_unknown_type_on_read_names_it(self, open_store: StoreOpener) -> None:
        registry = contract_registry()
        registry.register(_Unregistered)
        writer = await open_store(registry)
        stream = _stream()
        await writer.append(stream, [_Unregistered()])
        reader = await open_store(contract_registry())
        with pytest.raises(UnknownEventType, match=r"contract\.Unregistered"):
            await reader.read_stream(stream)

    async def test_upcasts_old_payloads_on_read(self, open_store: StoreOpener) -> None:
        old = await open_store(EventRegistry([_ItemAddedV1, Noted]))
        stream = _stream()
        await old.append(stream, [_ItemAddedV1(name="tea")])
        new = await open_store(contract_registry())
        [recorded] = await new.read_stream(stream)
        assert isinstance(recorded.event, ItemAdded)
        assert (recorded.event.name, recorded.event.quantity) == ("tea", 1)
        # A payload stored by a newer program is refused rather than misread.
        await new.append(stream, [ItemAdded(name="x", quantity=2)])
        with pytest.raises(UnknownEventType, match="schema version 2"):
            await old.read_stream(stream, from_version=2)

    # -- waiting ----------------------------------------------------------------------

    async def test_wait_for_events(self, store: EventStore) -> None:
        head = await store.head()
        assert await store.wait_for_events(head, timeout=0.05) is False
        waiter = asyncio.create_task(store.wait_for_events(head, timeout=5))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        loop = asyncio.get_running_loop()
        await store.append(_stream(), [_note("wake")])
        appended = loop.time()
        assert await waiter is True
        # Woken by the append itself, not by a fallback poll (default 1 s or more).
        assert loop.time() - appended < 0.5
        assert await store.wait_for_events(head, timeout=0) is True

    async def test_next_events_waits_then_returns_what_read_all_would(
        self, store: EventStore
    ) -> None:
        head = await store.head()
        assert await store.next_events(head, timeout=0.05) == []
        waiter = asyncio.create_task(store.next_events(head, 2, timeout=5))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        loop = asyncio.get_running_loop()
        stream = _stream()
        await store.append(stream, [_note("one"), _note("two"), _note("three")])
        appended = loop.time()
        arrived = await waiter
        assert loop.time() - appended < 0.5
        # At most ``limit``, in global order, exactly the events read_all returns.
        assert [(e.stream_id, e.version) for e in arrived] == [(stream, 1), (stream, 2)]
        assert [e.position for e in arrived] == [e.position for e in await store.read_all(head, 2)]
        rest = await store.next_events(arrived[-1].position, timeout=0)
        assert [e.version for e in rest] == [3]
        with pytest.raises(ValueError, match="limit"):
            await store.next_events(head, 0, timeout=0)

    async def test_a_closed_handle_says_so(self, open_store: StoreOpener) -> None:
        store = await open_store(contract_registry())
        head = await store.head()
        waiter = asyncio.create_task(store.wait_for_events(head, timeout=10))
        await asyncio.sleep(0.05)
        await store.close()
        # A waiter blocked at close ends at once with the same clear error.
        with pytest.raises(EventStoreClosed):
            await asyncio.wait_for(waiter, 2)
        with pytest.raises(EventStoreClosed):
            await store.append(_stream(), [_note("late")])
        with pytest.raises(EventStoreClosed):
            await store.read_all()
        with pytest.raises(EventStoreClosed):
            await store.wait_for_events(head, timeout=0.1)
        await store.close()  # closing twice is harmless

    async def test_nul_characters_are_refused_on_every_backend(self, store: EventStore) -> None:
        head = await store.head()
        with pytest.raises(ValueError, match="NUL"):
            await store.append("nul\x00stream", [_note("x")])
        with pytest.raises(ValueError, match="NUL"):
            await store.append(_stream(), [_note("a\x00b")])
        # A backslash followed by "u0000" is ordinary text, not a NUL.
        stream = _stream()
        await store.append(stream, [_note("C:\\u0000 is fine")])
        [recorded] = await store.read_stream(stream)
        assert getattr(recorded.event, "text", None) == "C:\\u0000 is fine"
        assert len(await store.read_all(head)) == 1

    # -- concurrency ------------------------------------------------------------------

    async def test_concurrent_writers_on_one_stream(self, store: EventStore) -> None:
        stream = _stream()
        await store.append(stream, [_note("seed")], NO_STREAM)

        async def writer(n: int) -> int | None:
            version = await store.stream_version(stream)
            try:
                result = await store.append(stream, [_note(f"w{n}")], version)
            except ConcurrencyError:
                return None
            return result.version

        outcomes = await asyncio.gather(*(writer(n) for n in range(self.concurrent_writers)))
        won = sorted(v for v in outcomes if v is not None)
        lost = [v for v in outcomes if v is None]
        assert won, "at least one writer must succeed"
        assert len(won) + len(lost) == self.concurrent_writers
        recorded = await store.read_stream(stream)
        assert [r.version for r in recorded] == list(range(1, len(recorded) + 1))
        assert len(recorded) == 1 + len(won)
        assert won == list(range(2, len(recorded) + 1))

    # -- idempotency ------------------------------------------------------------------

    async def test_idempotent_append(self, store: EventStore) -> None:
        stream = _stream()
        key = uuid.uuid4().hex
        first = await store.append(stream, [_note("once")], idempotency=Idempotency(key, "x1"))
        assert not first.replayed
        again = await store.append(stream, [_note("twice")], idempotency=Idempotency(key, "x2"))
        assert again.replayed
        assert (again.versions, again.position, again.result_id) == (
            first.versions,
            first.position,
            "x1",
        )
        assert await store.stream_version(stream) == 1
        found = await store.find_idempotent(key)
        assert found is not None
        assert found.position == first.position
        assert await store.find_idempotent(uuid.uuid4().hex) is None

    async def test_idempotent_command_replay_survives_reopen(self, open_store: StoreOpener) -> None:
        def bus_on(store: EventStore) -> CommandBus:
            bus = CommandBus(Repository(store), [IdempotencyMiddleware(store)])
            bus.register(AddItem, _add_item)
            return bus

        store = await open_store(contract_registry())
        tally = uuid.uuid4().hex
        command = AddItem(tally_id=tally, name="tea")
        first = await bus_on(store).send(command)
        assert (first.aggregate_id, first.replayed) == (tally, False)
        head = await store.head()
        again = await bus_on(store).send(command)
        assert (again.aggregate_id, again.position, again.replayed) == (tally, first.position, True)
        reopened = await open_store(contract_registry())
        after_restart = await bus_on(reopened).send(command)
        assert (after_restart.position, after_restart.replayed) == (first.position, True)
        assert await reopened.read_all(head) == []
        assert await reopened.stream_version(Tally.stream_id_for(tally)) == 1
        # A new command id is a new command.
        await bus_on(reopened).send(AddItem(tally_id=tally, name="tea"))
        assert await reopened.stream_version(Tally.stream_id_for(tally)) == 2

    async def test_an_append_of_nothing_is_idempotent_too(self, store: EventStore) -> None:
        # A command that changes nothing still records its id, so a repeat is a replay.
        key = uuid.uuid4().hex
        first = await store.append_many([], idempotency=Idempotency(key, "same"))
        again = await store.append_many([], idempotency=Idempotency(key, "same"))
        assert (first.replayed, again.replayed) == (False, True)
        assert (again.versions, again.position, again.result_id) == ({}, first.position, "same")
        assert first.position == await store.head()

    async def test_concurrent_repeats_write_once(self, store: EventStore) -> None:
        stream = _stream()
        key = uuid.uuid4().hex
        results = await asyncio.gather(
            *(
                store.append(stream, [_note(f"r{n}")], ANY, idempotency=Idempotency(key, "id"))
                for n in range(10)
            )
        )
        assert sum(not r.replayed for r in results) == 1
        assert len({r.position for r in results}) == 1
        assert await store.stream_version(stream) == 1

    # -- snapshots --------------------------------------------------------------------

    async def test_snapshot_then_events_equals_full_replay(self, store: EventStore) -> None:
        with_snapshots = Repository(store, snapshot_every={Tally: 3})
        tally_id = uuid.uuid4().hex
        for n in range(8):
            tally = await with_snapshots.find(Tally, tally_id) or Tally(tally_id)
            tally.add(f"item{n % 3}", n + 1)
            await with_snapshots.save(tally)
        snapshot = await store.load_snapshot(Tally.stream_id_for(tally_id))
        assert snapshot is not None
        assert snapshot.version == 6
        loaded = await with_snapshots.load(Tally, tally_id)
        replayed = await Repository(store).load(Tally, tally_id)
        assert loaded.version == replayed.version == 8
        assert loaded.items == replayed.items
        # The snapshot really is used: one built from a different state would show.
        forged = replace(snapshot, state={"items": {"forged": 1}, "notes": []})
        await store.save_snapshot(replace(forged, version=snapshot.version + 1))
        assert (await with_snapshots.load(Tally, tally_id)).items != replayed.items

    # -- the whole store against a model ----------------------------------------------

    @settings(
        max_examples=40,
        deadline=None,
        # One inherited test runs per backend class, hence several executors.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        operations=st.lists(
            st.tuples(
                st.integers(0, 2),  # stream
                st.sampled_from(["any", "no_stream", "exact", "stale"]),
                st.integers(0, 3),  # events in the append
            ),
            max_size=25,
        )
    )
    async def test_matches_a_simple_model(
        self, store: EventStore, operations: list[tuple[int, str, int]]
    ) -> None:
        streams = [_stream() for _ in range(3)]
        model: dict[str, list[str]] = {s: [] for s in streams}
        log: list[tuple[str, str]] = []
        head = await store.head()
        for step, (index, mode, count) in enumerate(operations):
            stream = streams[index]
            current = len(model[stream])
            expected = {
                "any": ANY,
                "no_stream": NO_STREAM,
                "exact": current if current else NO_STREAM,
                "stale": current + 1,
            }[mode]
            texts = [f"{step}.{i}" for i in range(count)]
            should_succeed = expected in (ANY, current)
            try:
                result = await store.append(stream, [_note(t) for t in texts], expected)
            except ConcurrencyError as exc:
                failure = (exc.stream_id, exc.actual)
                assert not should_succeed
                assert failure == (stream, current)
                continue
            assert should_succeed
            model[stream].extend(texts)
            log.extend((stream, t) for t in texts)
            assert result.version == len(model[stream])
        for stream in streams:
            assert await store.stream_version(stream) == len(model[stream])
            assert [
                getattr(r.event, "text", None) for r in await store.read_stream(stream)
            ] == model[stream]
        seen = [
            (r.stream_id, getattr(r.event, "text", None))
            for r in await store.read_all(head, limit=1_000_000)
            if r.stream_id in model
        ]
        assert seen == log
