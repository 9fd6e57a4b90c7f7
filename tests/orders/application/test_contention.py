"""Many orders for one product at once, on every event store: stock is never oversold.

Every PlaceOrder for the product appends to its stream, so concurrent ones conflict; the
retry middleware reruns the losers on fresh state until the stock is gone, after which
they are refused with InsufficientStock. None may end with a ConcurrencyError. In one
process, the service's repository queues them per product instead (no retries at all).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from cqrskit import (
    Command,
    CommandBus,
    CommandResult,
    Context,
    EventRegistry,
    EventStore,
    Next,
    RecordedEvent,
    Repository,
    open_event_store,
)
from cqrskit.store import MemoryEventStore
from orders.application.command_handlers import (
    SNAPSHOT_EVERY,
    command_middleware,
    command_repository,
    register_command_handlers,
)
from orders.application.commands import AddProduct, ItemRequest, PlaceOrder, RegisterCustomer
from orders.domain import ALL_EVENTS, InsufficientStock, Order, Product

from .conftest import ADDRESS

STOCK = 10
BUYERS = 20


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Which store to open; the PostgreSQL case skips (or fails) like every server test."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/e.db"
    postgres_url: str = request.getfixturevalue("postgres_url")
    pg_schema: str = request.getfixturevalue("pg_schema")
    return f"{postgres_url}?schema={pg_schema}"


class InterleavingMemoryStore(MemoryEventStore):
    """The in-memory store, but reads yield to other tasks as a database round trip does;
    without that, in-process commands never overlap and nothing would be contended."""

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        events = await super().read_stream(stream_id, from_version)
        # After the read, so that others may write before this task acts on what it read.
        await asyncio.sleep(0)
        return events


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    registry = EventRegistry(ALL_EVENTS)
    opened = (
        InterleavingMemoryStore(registry)
        if store_url == "memory://"
        else await open_event_store(store_url, registry)
    )
    try:
        yield opened
    finally:
        await opened.close()


@pytest.mark.parametrize("queued", [False, True], ids=["racing", "queued"])
async def test_concurrent_orders_never_oversell(store: EventStore, queued: bool) -> None:
    """Racing: as several processes would, every order loads the product and appends,
    and the losers retry. Queued: the service's repository in one process, where orders
    for the product wait for each other and none has to retry."""
    tries: list[int] = []

    async def count_tries(
        context: Context[Command], call_next: Next[Command, CommandResult]
    ) -> CommandResult:
        try:
            return await call_next(context)
        finally:
            tries.append(context.attempt)

    repository = (
        command_repository(store) if queued else Repository(store, snapshot_every=SNAPSHOT_EVERY)
    )
    bus = CommandBus(repository, [count_tries, *command_middleware(store)])
    register_command_handlers(bus)
    customer = await bus.send(RegisterCustomer(name="Ada", email="ada@example.com"))
    product = await bus.send(
        AddProduct(sku="HOT-1", name="Hot item", price=Decimal("9.99"), stock=STOCK)
    )
    orders = [
        PlaceOrder(
            customer_id=customer.aggregate_id,
            items=(ItemRequest(product_id=product.aggregate_id, quantity=1),),
            shipping_address=ADDRESS,
        )
        for _ in range(BUYERS)
    ]

    tries.clear()
    outcomes = await asyncio.gather(*(bus.send(o) for o in orders), return_exceptions=True)
    if queued:
        assert tries == [1] * BUYERS
    else:
        assert max(tries) > 1, "the orders did not contend: the test proves nothing"

    unexpected = [o for o in outcomes if isinstance(o, BaseException)]
    unexpected = [o for o in unexpected if not isinstance(o, InsufficientStock)]
    assert unexpected == []
    placed = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, InsufficientStock)]
    assert (len(placed), len(refused)) == (STOCK, BUYERS - STOCK)
    assert all(r.product_id == product.aggregate_id for r in refused)
    hot = await repository.load(Product, product.aggregate_id)
    assert hot.available == 0
    assert hot.reserved == STOCK
    for result in placed:
        placed_order = await repository.load(Order, result.aggregate_id)
        assert placed_order.quantities_by_product() == {hot.product_id: 1}
    for command, outcome in zip(orders, outcomes, strict=True):
        if isinstance(outcome, InsufficientStock):
            # A refused order wrote nothing, not even a stream of its own.
            assert await repository.find(Order, str(command.order_id)) is None
