"""Every event type of the Orders service survives the event store, whatever its values.

Hypothesis builds events through their own validated constructors (so only values the
domain allows), appends each and reads it back: it must come back equal, or be refused
whole before anything is written (e.g. a NUL character, which PostgreSQL's jsonb cannot
hold) — never stored in a form that cannot be read back.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqrskit import EventRegistry, EventStore, open_event_store
from cqrskit.errors import EventEncodingError
from cqrskit.messages import DomainEvent
from orders.domain.events import (
    ALL_EVENTS,
    CustomerRegistered,
    EmailClaimed,
    OrderCancelled,
    OrderItemAdded,
    OrderPlaced,
    OrderShipped,
    ProductAdded,
    ProductPriceChanged,
    ProductRestocked,
    SkuClaimed,
    StockReleased,
    StockReserved,
)
from orders.domain.values import Address, OrderLine

money = st.decimals(
    min_value=Decimal("0.01"), max_value=Decimal("1000000000"), places=2, allow_nan=False
)
text = st.text(max_size=60)
count = st.integers(min_value=0, max_value=10**9)
quantity = st.integers(min_value=1, max_value=10_000)
# Addresses refuse control characters at construction: the rest of the payload is any
# text, so that the store's own refusal (NUL) is exercised too.
printable = st.characters(blacklist_categories=("Cc", "Cs"))
address = st.builds(
    Address,
    street=st.text(printable, min_size=1, max_size=200).filter(str.strip),
    city=st.text(printable, min_size=1, max_size=100).filter(str.strip),
    postal_code=st.text(printable, min_size=1, max_size=20).filter(str.strip),
    country=st.text(printable, min_size=2, max_size=100).filter(lambda c: len(c.strip()) >= 2),
)
line = st.builds(
    OrderLine,
    product_id=st.uuids(),
    sku=text,
    name=text,
    unit_price=money,
    quantity=quantity,
)

EVENTS: dict[type[DomainEvent], st.SearchStrategy[DomainEvent]] = {
    CustomerRegistered: st.builds(
        CustomerRegistered, customer_id=st.uuids(), name=text, email=text
    ),
    EmailClaimed: st.builds(EmailClaimed, email=text, customer_id=st.uuids()),
    ProductAdded: st.builds(
        ProductAdded, product_id=st.uuids(), sku=text, name=text, price=money, stock=count
    ),
    SkuClaimed: st.builds(SkuClaimed, sku=text, product_id=st.uuids()),
    ProductRestocked: st.builds(ProductRestocked, product_id=st.uuids(), quantity=count),
    ProductPriceChanged: st.builds(
        ProductPriceChanged, product_id=st.uuids(), old_price=money, price=money
    ),
    StockReserved: st.builds(
        StockReserved, product_id=st.uuids(), order_id=st.uuids(), quantity=quantity
    ),
    StockReleased: st.builds(
        StockReleased, product_id=st.uuids(), order_id=st.uuids(), quantity=quantity
    ),
    OrderPlaced: st.builds(
        OrderPlaced,
        order_id=st.uuids(),
        customer_id=st.uuids(),
        lines=st.lists(line, min_size=1, max_size=5).map(tuple),
        shipping_address=address,
        total=money,
    ),
    OrderItemAdded: st.builds(OrderItemAdded, order_id=st.uuids(), line=line, total=money),
    OrderShipped: st.builds(OrderShipped, order_id=st.uuids(), tracking_number=text),
    OrderCancelled: st.builds(OrderCancelled, order_id=st.uuids(), reason=text, total=money),
}


def test_every_registered_event_type_has_a_strategy() -> None:
    assert set(EVENTS) == set(ALL_EVENTS)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    postgres_url = ""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/events.db?synchronous=OFF"
    else:
        postgres_url = request.getfixturevalue("postgres_url")
        url = f"{postgres_url}?schema={schema}"
    opened = await open_event_store(url, EventRegistry(ALL_EVENTS))
    yield opened
    await opened.close()
    if postgres_url:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(event=st.one_of(*EVENTS.values()))
async def test_an_event_comes_back_equal_or_is_refused_whole(
    store: EventStore, event: DomainEvent
) -> None:
    stream = f"s-{uuid.uuid4().hex}"
    try:
        await store.append(stream, [event])
    except EventEncodingError:
        assert await store.read_stream(stream) == []
        return
    [stored] = await store.read_stream(stream)
    assert stored.event == event
    assert stored.event.model_dump() == event.model_dump()
