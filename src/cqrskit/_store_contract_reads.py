"""The event-store contract on reading: global and per-stream order, metadata, unknown and
old event types, waiting for new events, closed handles, and snapshots.

A themed part of :class:`cqrskit.testing.EventStoreContract` (which inherits it).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest

from cqrskit._store_contract_kit import (
    ItemAdded,
    Noted,
    StoreOpener,
    Tally,
    _ItemAddedV1,
    _note,
    _stream,
    _Unregistered,
    contract_registry,
    readable,
)
from cqrskit.errors import EventStoreClosed, UnknownEventType
from cqrskit.messages import Metadata
from cqrskit.repository import Repository
from cqrskit.store.base import EventStore, RecordedEvent
from cqrskit.store.serialization import EventRegistry


class _ReadContract:
    """What every event store must do when reading and waiting."""

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
        # On a shared PostgreSQL server another client's open transaction holds back
        # what read_all may return for a moment; it never reorders or drops.
        await readable(store, result.position)
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

    # -- snapshots --------------------------------------------------------------------

    async def test_snapshot_then_events_equals_full_replay(self, store: EventStore) -> None:
        # No in-memory states: this is about the snapshots the store keeps.
        with_snapshots = Repository(store, snapshot_every={Tally: 3}, cache_size=0)
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
