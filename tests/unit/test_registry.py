"""EventRegistry: registering classes that complete later, decoding pages of stored rows."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

from pydantic import BaseModel

from cqrskit.messages import DomainEvent, Metadata
from cqrskit.store._common import decode_page
from cqrskit.store.base import Position, RecordedEvent
from cqrskit.store.serialization import EventRegistry

registry = EventRegistry()


@registry.register
class Shipped(DomainEvent):
    parcel: Parcel  # defined below: the class is incomplete when it registers


class Parcel(BaseModel):
    weight_grams: int


Shipped.model_rebuild()


def test_a_class_completed_after_registering_decodes() -> None:
    stored = registry.encode(Shipped(parcel=Parcel(weight_grams=5)))
    event = registry.decode(stored.event_type, 1, stored.data, stored.metadata)
    assert isinstance(event, Shipped)
    assert event.parcel.weight_grams == 5


def test_decoded_pages_hold_ordinary_positions_and_recorded_events() -> None:
    event = Shipped(parcel=Parcel(weight_grams=7), metadata=Metadata())
    stored = registry.encode(event)
    when = "2026-11-22T10:00:00+00:00"
    row = ("s-1", 3, 9, 42, stored.event_type, 1, stored.data, stored.metadata, when)
    [recorded] = decode_page(registry, [row, row], datetime.fromisoformat)[:1]
    assert recorded.event == event
    # The same object the dataclass's own constructor makes, in every respect.
    expected = RecordedEvent(
        "s-1", 3, Position(9, 42), recorded.event, datetime(2026, 11, 22, 10, tzinfo=UTC)
    )
    assert recorded == expected
    assert hash(recorded.position) == hash(Position(9, 42))
    assert repr(recorded) == repr(expected)
    assert pickle.loads(pickle.dumps(recorded)) == expected
    assert dataclasses.replace(recorded, version=4).version == 4
    assert dataclasses.asdict(recorded.position) == {"commit": 9, "seq": 42}


def test_stored_texts_outside_the_common_shape_still_decode() -> None:
    event = Shipped(parcel=Parcel(weight_grams=3))
    stored = registry.encode(event)
    shapes = [
        (stored.data, stored.metadata),
        (f"  {stored.data}\n", stored.metadata),
        (stored.data.encode(), stored.metadata.encode()),
    ]
    for data, metadata in shapes:
        assert registry.decode(stored.event_type, 1, data, metadata) == event
