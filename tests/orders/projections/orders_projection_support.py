"""Helpers for the orders read-model tests: read stores of every kind, a runner loop, a
shop that writes the events a real service would (at chosen times), and model dumps."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from prometheus_client import CollectorRegistry

from cqrskit import Metadata
from cqrskit.projection import Projection, ProjectionRunner
from cqrskit.readstore import ReadStore, RedisReadStore, SqlReadStore
from cqrskit.store import EventStore
from orders.domain.events import (
    CustomerRegistered,
    OrderCancelled,
    OrderItemAdded,
    OrderPlaced,
    OrderShipped,
    ProductAdded,
    ProductPriceChanged,
    ProductRestocked,
    StockReleased,
    StockReserved,
)
from orders.domain.values import Address, OrderLine


def searchable_id() -> UUID:
    """A random UUID whose dash-separated groups all start with a digit.

    Order search matches words by prefix, and an id's groups are words: a random id with a
    group such as ``ada7`` is found by a search for "ada" (a customer's name in the search
    tests): with a dozen ids per test and a dozen such tests, about one run in ten failed.
    """
    while True:
        candidate = uuid.uuid4()
        if all(group[0].isdigit() for group in str(candidate).split("-")):
            return candidate


START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Stores:
    """Opens fresh, empty read stores of one kind; everything is removed afterwards."""

    kind: str
    opener: Callable[[str], Awaitable[ReadStore[Any]]]
    opened: list[ReadStore[Any]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    async def open(self, *, close: bool = True) -> Any:
        """A new empty store (its own SQLite file, PostgreSQL schema or Redis prefix);
        closed after the test unless ``close`` is false (someone else closes it)."""
        name = f"t{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        store = await self.opener(name)
        if close:
            self.opened.append(store)
        return store

    async def close(self) -> None:
        for store in self.opened:
            await store.close()


async def project(
    events: EventStore, store: ReadStore[Any], *projections: Projection[Any], batch_size: int = 3
) -> None:
    """Run ``projections`` through a real runner until they have every event."""
    runner = ProjectionRunner(
        events, batch_size=batch_size, idle_wait=0.2, registry=CollectorRegistry()
    )
    for projection in projections:
        runner.add(projection, store)
    async with runner:
        head = await events.head()
        for projection in projections:
            result = await runner.wait_for(projection.name, head, timeout=20)
            assert result.reached, result
    for projection in projections:
        assert await store.parked_events(projection.name) == []


@dataclass(frozen=True)
class Product:
    """A product as the shop knows it."""

    id: UUID
    sku: str
    name: str
    price: Decimal

    def line(self, quantity: int) -> OrderLine:
        return OrderLine(
            product_id=self.id,
            sku=self.sku,
            name=self.name,
            unit_price=self.price,
            quantity=quantity,
        )


class Shop:
    """Writes the service's events, each at a time of the shop's clock (one minute apart
    unless set with :meth:`at`)."""

    def __init__(self, events: EventStore) -> None:
        self.events = events
        self.clock = START
        self.totals: dict[UUID, Decimal] = {}

    def at(self, moment: datetime) -> Shop:
        self.clock = moment - timedelta(minutes=1)
        return self

    def _meta(self) -> Metadata:
        self.clock += timedelta(minutes=1)
        return Metadata(timestamp=self.clock)

    async def customer(self, name: str, email: str) -> UUID:
        return await self.register(searchable_id(), name, email)

    async def register(self, customer_id: UUID, name: str, email: str) -> UUID:
        event = CustomerRegistered(
            customer_id=customer_id, name=name, email=email, metadata=self._meta()
        )
        await self.events.append(f"Customer-{customer_id}", [event])
        return customer_id

    async def product(self, sku: str, name: str, price: str, stock: int = 100) -> Product:
        product = Product(searchable_id(), sku, name, Decimal(price))
        event = ProductAdded(
            product_id=product.id,
            sku=sku,
            name=name,
            price=product.price,
            stock=stock,
            metadata=self._meta(),
        )
        await self.events.append(f"Product-{product.id}", [event])
        return product

    async def restock(self, product: Product, quantity: int) -> None:
        event = ProductRestocked(product_id=product.id, quantity=quantity, metadata=self._meta())
        await self.events.append(f"Product-{product.id}", [event])

    async def reprice(self, product: Product, price: str) -> Product:
        event = ProductPriceChanged(
            product_id=product.id,
            old_price=product.price,
            price=Decimal(price),
            metadata=self._meta(),
        )
        await self.events.append(f"Product-{product.id}", [event])
        return Product(product.id, product.sku, product.name, Decimal(price))

    async def _stock(self, order_id: UUID, lines: list[OrderLine], reserve: bool) -> None:
        for line in lines:
            kind = StockReserved if reserve else StockReleased
            event = kind(
                product_id=line.product_id,
                order_id=order_id,
                quantity=line.quantity,
                metadata=self._meta(),
            )
            await self.events.append(f"Product-{line.product_id}", [event])

    async def place(
        self, customer_id: UUID, *lines: OrderLine, city: str = "Paris", street: str = "1 Rue"
    ) -> UUID:
        order_id = searchable_id()
        total = sum((line.total for line in lines), Decimal(0))
        event = OrderPlaced(
            order_id=order_id,
            customer_id=customer_id,
            lines=lines,
            shipping_address=Address(
                street=street, city=city, postal_code="75001", country="France"
            ),
            total=total,
            metadata=self._meta(),
        )
        self.clock -= timedelta(minutes=1)  # the reservations happen in the same moment
        await self.events.append(f"Order-{order_id}", [event])
        self.totals[order_id] = total
        await self._stock(order_id, list(lines), reserve=True)
        return order_id

    async def add_item(self, order_id: UUID, line: OrderLine) -> None:
        self.totals[order_id] += line.total
        event = OrderItemAdded(
            order_id=order_id, line=line, total=self.totals[order_id], metadata=self._meta()
        )
        await self.events.append(f"Order-{order_id}", [event])

    async def ship(self, order_id: UUID, tracking: str = "TRACK-1") -> None:
        event = OrderShipped(order_id=order_id, tracking_number=tracking, metadata=self._meta())
        await self.events.append(f"Order-{order_id}", [event])

    async def cancel(
        self, order_id: UUID, *released: OrderLine, reason: str = "changed mind"
    ) -> None:
        event = OrderCancelled(
            order_id=order_id, reason=reason, total=self.totals[order_id], metadata=self._meta()
        )
        await self.events.append(f"Order-{order_id}", [event])
        await self._stock(order_id, list(released), reserve=False)


async def redis_dump(store: RedisReadStore, projection: str) -> dict[str, Any]:
    """Every key of the live version of ``projection``, relative to its prefix, with its
    value in plain, comparable form."""
    prefix = await store.live_prefix(projection)
    client = store.client
    dump: dict[str, Any] = {}
    async for raw in client.scan_iter(match=prefix + "*"):
        key = _text(raw)
        kind = _text(await client.type(key))
        if kind == "hash":
            raw_hash = await client.hgetall(key)
            value: Any = {_text(k): _text(v) for k, v in raw_hash.items()}
        elif kind == "zset":
            members: list[Any] = await client.zrange(key, 0, -1, withscores=True)
            value = [(_text(m), score) for m, score in members]
        else:
            value = (kind, await client.dump(key))
        dump[key.removeprefix(prefix)] = value
    return dict(sorted(dump.items()))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def sql_dump(store: SqlReadStore, projection: str, **queries: str) -> dict[str, Any]:
    """The rows of each named query over ``projection``'s live tables."""
    return {name: await store.query(projection, sql) for name, sql in queries.items()}
