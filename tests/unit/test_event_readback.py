"""EventRegistry.encode refuses an event it could not read back, saying which field and why.

The contract suite proves the same through ``append`` on every backend; these pin the
messages and the cases only the encoder sees (nested models, metadata subclasses).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import BaseModel

from cqrskit import EventEncodingError, EventStoreError
from cqrskit.messages import DomainEvent, Metadata
from cqrskit.store import EventRegistry


class Line(BaseModel):
    sku: str
    price: float


class Priced(DomainEvent):
    event_type = "test.Priced"
    total: float
    lines: list[Line] = []
    extra: dict[str, Any] = {}


class Traced(Metadata):
    """Metadata of a user's own, with a float."""

    score: float = 0.0


registry = EventRegistry([Priced])


def _refusal(event: DomainEvent) -> EventEncodingError:
    with pytest.raises(EventEncodingError) as caught:
        registry.encode(event)
    return caught.value


def test_a_non_finite_float_is_refused_naming_its_field_and_what_was_expected() -> None:
    error = _refusal(Priced(total=math.nan))
    assert isinstance(error, EventStoreError)
    assert isinstance(error, ValueError)
    assert (error.event_type, error.field) == ("test.Priced", "total")
    assert str(error).startswith("event 'test.Priced' cannot be stored: field 'total': ")
    assert "expected a finite number, got nan" in str(error)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (
            Priced(total=1, lines=[Line(sku="a", price=1), Line(sku="b", price=-math.inf)]),
            "lines[1].price",
        ),
        (Priced(total=1, extra={"ratio": math.inf}), "extra['ratio']"),
        (Priced(total=1, metadata=Traced(score=math.nan)), "metadata.score"),
    ],
)
def test_non_finite_floats_are_found_anywhere(event: DomainEvent, field: str) -> None:
    assert _refusal(event).field == field


def test_a_value_that_would_not_validate_back_is_refused() -> None:
    error = _refusal(Priced.model_construct(total="lots"))
    assert error.field == "total"
    assert "Input should be a valid number" in str(error)
    assert "got 'lots' (str)" in str(error)
    assert "would not validate back into Priced" in str(error)


def test_a_nested_value_of_the_wrong_type_is_refused() -> None:
    line = Line.model_construct(sku=5, price=1.0)
    assert _refusal(Priced(total=1, lines=[line])).field == "lines[0].sku"


def test_a_value_pydantic_cannot_serialize_is_refused() -> None:
    error = _refusal(Priced.model_construct(total=object()))
    assert "cannot be serialized as JSON" in str(error)


def test_valid_events_encode_as_before() -> None:
    event = Priced(total=2.5, lines=[Line(sku="a", price=2.5)], extra={"note": None})
    encoded = registry.encode(event)
    assert registry.decode(encoded.event_type, 1, encoded.data, encoded.metadata) == event
