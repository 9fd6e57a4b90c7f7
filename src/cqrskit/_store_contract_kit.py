"""What the event-store contract suite works with: its events and their registry, an
aggregate and a command, and how a test opens its stores."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from cqrskit._store_contract_input import Measured
from cqrskit.aggregate import Aggregate
from cqrskit.errors import DomainError
from cqrskit.messages import Command, DomainEvent
from cqrskit.repository import UnitOfWork
from cqrskit.store.base import EventStore, Position, RecordedEvent
from cqrskit.store.serialization import EventRegistry

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


async def readable(store: EventStore, written: Position, timeout: float = 10.0) -> None:
    """Return once ``store.head()`` has reached ``written`` (see :func:`read_through`)."""
    deadline = time.monotonic() + timeout
    while (head := await store.head()) < written and time.monotonic() < deadline:
        await store.wait_for_events(head, 0.2)


async def read_through(
    store: EventStore, after: Position, last: Position, timeout: float = 10.0
) -> list[RecordedEvent]:
    """``read_all(after)`` once every event up to ``last`` is readable.

    On PostgreSQL a just-committed event stays unreadable while an older transaction of
    any other session is open (mechanism 3): a test sharing its server with other work
    must wait for it rather than expect it at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        page = await store.read_all(after, limit=1_000_000)
        reached = last <= after or (page and page[-1].position >= last)
        if reached or time.monotonic() > deadline:
            return page
        await store.wait_for_events(page[-1].position if page else after, 0.2)
