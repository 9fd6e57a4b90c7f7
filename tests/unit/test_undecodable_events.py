"""Reading events that can no longer be decoded: ``read_all`` hands them over, ``read_stream``
raises a typed error."""

from __future__ import annotations

import pytest

from cqrskit import EventDecodeError, UnknownEventType
from cqrskit.messages import DomainEvent, Metadata
from cqrskit.projection.testing import Ignored, Ticked, rewrite_stored_event, tick_registry
from cqrskit.store import START, EventRegistry, MemoryEventStore, UndecodableEvent


class Measured(DomainEvent):
    event_type = "undecodable-unit.Measured"
    value: float


async def _store() -> MemoryEventStore:
    events = MemoryEventStore(EventRegistry([Ticked, Ignored, Measured]))
    await events.append("s", [Ticked(label="a"), Measured(value=1.5), Ticked(label="c")])
    return events


async def test_read_all_hands_over_an_undecodable_event_in_its_place() -> None:
    events = await _store()
    [_, measured, _] = await events.read_all(START)
    rewrite_stored_event(events, measured.position, data='{"value": null}')
    page = await events.read_all(START)
    assert [r.version for r in page] == [1, 2, 3]
    assert isinstance(page[0].event, Ticked)
    assert isinstance(page[2].event, Ticked)
    stand_in = page[1].event
    assert isinstance(stand_in, UndecodableEvent)
    assert (stand_in.stored_type, stand_in.stored_schema_version) == (Measured.event_type, 1)
    assert stand_in.stored_data == '{"value": null}'
    assert stand_in.event_class is Measured
    assert not stand_in.unregistered
    assert "ValidationError" in stand_in.reason
    assert "value" in stand_in.reason
    # The stored metadata still validates, so it is kept (correlation survives).
    assert stand_in.metadata == measured.event.metadata
    assert stand_in.concerns((Measured,))
    assert not stand_in.concerns((Ticked,))


async def test_read_stream_raises_a_typed_error_naming_the_event() -> None:
    events = await _store()
    rewrite_stored_event(events, (await events.head()), data='{"label": 12}')
    with pytest.raises(EventDecodeError) as caught:
        await events.read_stream("s")
    error = caught.value
    assert (error.stream_id, error.version, error.event_type) == ("s", 3, Ticked.event_type)
    assert (error.position, error.schema_version) == ("3", 1)
    assert "stream 's' v3" in str(error)
    assert Ticked.event_type in str(error)
    assert "valid string" in error.reason
    assert not isinstance(error, UnknownEventType)


async def test_an_unknown_type_is_an_unknown_event_type_too() -> None:
    events = await _store()
    rewrite_stored_event(events, (await events.head()), event_type="undecodable-unit.Gone")
    with pytest.raises(UnknownEventType, match=r"undecodable-unit\.Gone") as caught:
        await events.read_stream("s")
    assert isinstance(caught.value, EventDecodeError)
    assert caught.value.version == 3
    [*_, last] = await events.read_all(START)
    assert isinstance(last.event, UndecodableEvent)
    assert last.event.unregistered
    assert last.event.event_class is None
    # Nobody can tell who consumes an unknown type: it concerns every consumer.
    assert last.event.concerns((Ignored,))


async def test_a_missing_upcaster_then_an_upcaster() -> None:
    class MeasuredV2(DomainEvent):
        event_type = Measured.event_type
        schema_version = 2
        value: float
        unit: str

    events = await _store()
    newer = MemoryEventStore(EventRegistry([Ticked, Ignored, MeasuredV2]), events.storage)
    [_, stand_in, _] = await newer.read_all(START)
    assert isinstance(stand_in.event, UndecodableEvent)
    assert stand_in.event.unregistered
    assert stand_in.event.event_class is MeasuredV2
    newer.registry.add_upcaster(Measured.event_type, 1, lambda p: {**p, "unit": "kg"})
    [_, fixed, _] = await newer.read_all(START)
    assert isinstance(fixed.event, MeasuredV2)
    assert fixed.event.unit == "kg"


def test_stand_in_with_unreadable_metadata_gets_fresh_metadata() -> None:
    registry = tick_registry()
    stand_in = registry.undecodable("x.Gone", 1, b'{"a": 1}', "not json", ValueError("boom"))
    assert isinstance(stand_in.metadata, Metadata)
    assert (stand_in.stored_data, stand_in.stored_metadata) == ('{"a": 1}', "not json")
    assert stand_in.reason == "ValueError: boom"
    assert not stand_in.unregistered
