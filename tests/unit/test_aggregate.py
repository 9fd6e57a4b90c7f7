from typing import Any

import pytest

from cqrskit import Aggregate, DomainError, DomainEvent
from cqrskit.testing import AggregateScenario


class Opened(DomainEvent):
    limit: int


class Charged(DomainEvent):
    amount: int


class Card(Aggregate):
    category = "card"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.limit = 0
        self.spent = 0

    @classmethod
    def open(cls, id: str, limit: int) -> "Card":
        card = cls(id)
        card.record(Opened(limit=limit))
        return card

    def charge(self, amount: int) -> None:
        if self.spent + amount > self.limit:
            raise DomainError("over the limit")
        self.record(Charged(amount=amount))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case Opened(limit=limit):
                self.limit = limit
            case Charged(amount=amount):
                self.spent += amount
            case _:
                super().apply(event)


class Plain(Aggregate):
    pass


def test_record_applies_and_tracks_versions() -> None:
    card = Card.open("c1", 100)
    card.charge(30)
    assert (card.spent, card.version, card.persisted_version) == (30, 2, 0)
    assert card.has_pending_events
    events = card.collect_events()
    assert [type(e) for e in events] == [Opened, Charged]
    assert card.collect_events() == []
    assert card.persisted_version == 2


def test_replay_rebuilds_state_without_pending_events() -> None:
    card = Card.from_events("c1", [Opened(limit=50), Charged(amount=20), Charged(amount=5)])
    assert (card.spent, card.version, card.has_pending_events) == (25, 3, False)


def test_domain_error_records_nothing() -> None:
    AggregateScenario(Card, "c1").given(Opened(limit=10)).when(
        lambda card: card.charge(11)
    ).then_raises(DomainError, match="limit")


def test_scenario_then_checks_events() -> None:
    scenario = AggregateScenario(Card, "c1").given(Opened(limit=10)).when(lambda c: c.charge(4))
    scenario.then(Charged(amount=4))
    with pytest.raises(AssertionError):
        scenario.then(Charged(amount=5))


def test_unhandled_event_is_an_error() -> None:
    with pytest.raises(NotImplementedError, match="does not apply"):
        Card("c1").apply(DomainEvent())


def test_stream_ids_and_categories() -> None:
    assert Card.stream_id_for("x") == "card-x"
    assert Plain("p").stream_id == "Plain-p"
    with pytest.raises(ValueError, match="empty"):
        Plain("")


def test_snapshot_support_is_opt_in() -> None:
    class Snappy(Aggregate):
        def snapshot_state(self) -> dict[str, Any]:
            return {}

        def restore_state(self, state: dict[str, Any]) -> None:
            pass

    assert Snappy.supports_snapshots()
    assert not Card.supports_snapshots()
    with pytest.raises(NotImplementedError):
        Card("c").snapshot_state()
