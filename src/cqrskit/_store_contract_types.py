"""The event-store contract on reading only some event types (``read_all`` and
``next_events`` with ``types``): the other events are passed over, never skipped, and the
page says how far the read reached.

A themed part of :class:`cqrskit.testing.EventStoreContract` (which inherits it).
"""

from __future__ import annotations

import asyncio

from cqrskit._store_contract_input import Measured
from cqrskit._store_contract_kit import (
    ItemAdded,
    Noted,
    StoreOpener,
    _note,
    _stream,
    _Unregistered,
    contract_registry,
    readable,
)
from cqrskit.messages import DomainEvent
from cqrskit.store.base import EventPage, EventStore, Position
from cqrskit.store.serialization import EventRegistry, UndecodableEvent


class _LoudlyNoted(Noted):
    """A registered subclass of a contract event, under a name of its own."""

    event_type = "contract.LoudlyNoted"


class _NotedV9(DomainEvent):
    """``contract.Noted`` as a newer program stores it: the contract's registry cannot
    decode it (no class of that schema version), though it knows the type."""

    event_type = "contract.Noted"
    schema_version = 9
    text: str


def _item(name: str) -> ItemAdded:
    return ItemAdded(name=name, quantity=1)


def _texts(page: EventPage) -> list[str]:
    return [str(getattr(r.event, "text", None) or getattr(r.event, "name", "?")) for r in page]


class _TypesContract:
    """What every event store must do when a reader asks for some event types only."""

    async def test_read_all_of_types_returns_only_them_and_ends_where_it_reached(
        self, store: EventStore
    ) -> None:
        head = await store.head()
        stream = _stream()
        await store.append(stream, [_note("n1"), _item("i1"), _note("n2")])
        written = await store.append(stream, [Measured(value=1.0), _item("i2"), _note("n3")])
        await readable(store, written.position)
        everything = await store.read_all(head, 100)
        assert (everything.end, everything.scanned) == (everything[-1].position, 6)
        items = await store.read_all(head, 100, types=[ItemAdded])
        assert _texts(items) == ["i1", "i2"]
        assert [r.position for r in items] == [everything[1].position, everything[4].position]
        # The read covered every event after head: the ones passed over too.
        assert (items.end, items.scanned) == (everything[-1].position, 6)
        some = await store.read_all(head, 100, types=(Noted, Measured))
        assert _texts(some) == ["n1", "n2", "?", "n3"]
        # Nothing readable after the end: an empty page that ends where it started.
        after_all = await store.read_all(items.end, 100, types=[ItemAdded])
        assert (list(after_all), after_all.end, after_all.scanned) == ([], items.end, 0)

    async def test_pages_of_events_passed_over_still_move_on(self, store: EventStore) -> None:
        head = await store.head()
        stream = _stream()
        written = await store.append(stream, [_note(f"n{i}") for i in range(7)] + [_item("last")])
        await readable(store, written.position)
        seen: list[str] = []
        ends: list[Position] = []
        after = head
        while True:
            page = await store.read_all(after, 3, types=[ItemAdded])
            seen += _texts(page)
            if page.scanned < 3:
                break
            assert page.end > after
            ends.append(page.end)
            after = page.end
        assert seen == ["last"]
        # Pages of 3, 3 and 2 events: the third, short, reached the head.
        assert page.end == await store.head()
        assert len(ends) == 2
        assert ends[0] < ends[1]

    async def test_types_take_registered_subclasses(self, open_store: StoreOpener) -> None:
        registry = contract_registry()
        registry.register(_LoudlyNoted)
        store = await open_store(registry)
        head = await store.head()
        written = await store.append(
            _stream(), [_note("quiet"), _item("i"), _LoudlyNoted(text="LOUD")]
        )
        await readable(store, written.position)
        assert _texts(await store.read_all(head, 10, types=[Noted])) == ["quiet", "LOUD"]
        assert _texts(await store.read_all(head, 10, types=[_LoudlyNoted])) == ["LOUD"]

    async def test_undecodable_events_come_only_to_readers_of_their_type(
        self, open_store: StoreOpener
    ) -> None:
        writer = await open_store(EventRegistry([ItemAdded, _NotedV9, _Unregistered]))
        reader = await open_store(contract_registry())
        head = await reader.head()
        stream = _stream()
        written = await writer.append(stream, [_NotedV9(text="v9"), _item("i"), _Unregistered()])
        await readable(reader, written.position)
        # Known type, payload it cannot decode: only for a reader of that type.
        [bad, unknown] = await reader.read_all(head, 10, types=[Noted])
        assert isinstance(bad.event, UndecodableEvent)
        assert (bad.event.stored_type, bad.event.event_class) == ("contract.Noted", Noted)
        # A type the registry does not know: whether it is of the types asked for cannot
        # be told, so every reader gets it.
        assert isinstance(unknown.event, UndecodableEvent)
        assert unknown.event.stored_type == "contract.Unregistered"
        assert unknown.event.event_class is None
        page = await reader.read_all(head, 10, types=[ItemAdded])
        assert [type(r.event) for r in page] == [ItemAdded, UndecodableEvent]
        assert page.end == unknown.position

    async def test_next_events_of_types_returns_when_any_event_arrives(
        self, store: EventStore
    ) -> None:
        head = await store.head()
        idle = await store.next_events(head, 10, timeout=0.05, types=[ItemAdded])
        assert (list(idle), idle.end, idle.scanned) == ([], head, 0)
        waiter = asyncio.create_task(store.next_events(head, 10, timeout=5, types=[ItemAdded]))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        loop = asyncio.get_running_loop()
        written = await store.append(_stream(), [_note("not wanted")])
        appended = loop.time()
        page = await waiter
        # Woken promptly by an event it passes over: an empty page that moved on, so
        # that a reader of other types still reaches every position.
        assert loop.time() - appended < 0.5
        assert (list(page), page.end, page.scanned) == ([], written.position, 1)
        await store.append(_stream(), [_note("still not"), _item("wanted")])
        page = await store.next_events(page.end, 10, timeout=5, types=[ItemAdded])
        assert _texts(page) == ["wanted"]
        assert page.end == await store.head()

    async def test_types_follow_registrations_made_after_opening(
        self, open_store: StoreOpener
    ) -> None:
        # What a read passes over is decided by the registry as it is at each call.
        registry = EventRegistry([Noted, ItemAdded])
        store = await open_store(registry)
        head = await store.head()
        await readable(store, (await store.append(_stream(), [_note("n"), _item("i")])).position)
        assert _texts(await store.read_all(head, 10, types=[Noted])) == ["n"]
        registry.register(_LoudlyNoted)
        registry.register(_Unregistered)
        written = await store.append(_stream(), [_LoudlyNoted(text="L"), _Unregistered()])
        await readable(store, written.position)
        page = await store.read_all(head, 10, types=[Noted])
        assert _texts(page) == ["n", "L"]
        assert (page.end, page.scanned) == (await store.head(), 4)
