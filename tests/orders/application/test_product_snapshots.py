"""Products load from snapshots in the service: every order appends to its products'
streams, so without them each PlaceOrder would replay a longer history than the last."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest

from cqrskit import (
    CommandBus,
    EventRegistry,
    EventStore,
    RecordedEvent,
    Repository,
    open_event_store,
)
from orders.application.command_handlers import (
    SNAPSHOT_EVERY,
    command_middleware,
    register_command_handlers,
)
from orders.application.commands import (
    AddProduct,
    CancelOrder,
    ItemRequest,
    PlaceOrder,
    RegisterCustomer,
)
from orders.domain import ALL_EVENTS, Product

from .conftest import ADDRESS

EVERY = SNAPSHOT_EVERY[Product]


class ReadCountingStore:
    """Records the ``from_version`` of every ``read_stream`` of a product's stream."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.product_reads: list[int] = []
        self._read_stream = store.read_stream

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        if stream_id.startswith(f"{Product.category}-"):
            self.product_reads.append(from_version)
        return await self._read_stream(stream_id, from_version)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/e.db"
    opened = await open_event_store(url, EventRegistry(ALL_EVENTS))
    try:
        yield opened
    finally:
        await opened.close()


async def shop(store: EventStore, cache_size: int = 1000) -> tuple[CommandBus, UUID, UUID]:
    """The service's bus and repository settings, a customer and a product."""
    repository = Repository(store, snapshot_every=SNAPSHOT_EVERY, cache_size=cache_size)
    bus = CommandBus(repository, command_middleware(store))
    register_command_handlers(bus)
    customer = await bus.send(RegisterCustomer(name="Ada", email="ada@example.com"))
    product = await bus.send(AddProduct(sku="TEA-1", name="Tea", price="4.50", stock=1000))
    return bus, UUID(customer.aggregate_id), UUID(product.aggregate_id)


def order(customer: UUID, product: UUID, quantity: int = 1) -> PlaceOrder:
    return PlaceOrder(
        customer_id=customer,
        items=(ItemRequest(product_id=product, quantity=quantity),),
        shipping_address=ADDRESS,
    )


async def test_a_product_is_snapshotted_and_loads_like_a_full_replay(store: EventStore) -> None:
    bus, customer, product = await shop(store)
    first = await bus.send(order(customer, product, 3))
    for _ in range(2 * EVERY):
        await bus.send(order(customer, product))
    await bus.send(CancelOrder(order_id=UUID(first.aggregate_id), reason="changed my mind"))

    stream = Product.stream_id_for(str(product))
    version = await store.stream_version(stream)
    assert version == 2 * EVERY + 3  # added, 2 * EVERY + 1 reserved, released
    snapshot = await store.load_snapshot(stream)
    assert snapshot is not None
    assert snapshot.version == 2 * EVERY

    from_snapshot = await Repository(store, snapshot_every=SNAPSHOT_EVERY).load(
        Product, str(product)
    )
    replayed = await Repository(store).load(Product, str(product))
    assert vars(from_snapshot) == vars(replayed)
    assert (replayed.version, replayed.available, replayed.reserved) == (
        version,
        1000 - 2 * EVERY,
        2 * EVERY,
    )


@pytest.mark.parametrize(("cache_size", "read_from"), [(0, EVERY + 1), (1000, EVERY + 4)])
async def test_place_order_reads_only_the_events_after_the_snapshot(
    store: EventStore, cache_size: int, read_from: int
) -> None:
    # Without the repository's in-memory states, from the stored snapshot at EVERY; with
    # them, from the state this process kept at its last save (added + EVERY + 2 orders).
    bus, customer, product = await shop(store, cache_size)
    for _ in range(EVERY + 2):
        await bus.send(order(customer, product))
    counting = ReadCountingStore(store)
    store.read_stream = counting.read_stream  # type: ignore[method-assign]

    await bus.send(order(customer, product))

    assert counting.product_reads == [read_from]


async def test_cancel_after_a_snapshot_gives_back_exactly_the_orders_units(
    store: EventStore,
) -> None:
    bus, customer, product = await shop(store)
    order_id = UUID((await bus.send(order(customer, product, 5))).aggregate_id)
    for _ in range(EVERY):
        await bus.send(order(customer, product))
    assert await store.load_snapshot(Product.stream_id_for(str(product))) is not None

    await bus.send(CancelOrder(order_id=order_id, reason="oops"))

    loaded = await Repository(store, snapshot_every=SNAPSHOT_EVERY).load(Product, str(product))
    assert (loaded.available, loaded.reserved) == (1000 - EVERY, EVERY)
