"""The order-details read model in Redis: the same answers as the SQL one.

Keys, under the version's prefix (``{store prefix}order_details:v1:``):

- ``order:<order_id>``: a hash of the order's fields (status, item_count, total_cents,
  address, tracking_number, cancellation_reason, placed_at / updated_at in microseconds
  since the epoch, version = order stream version, customer_id, customer_name);
- ``lines:<order_id>``: a hash ``<event version>:<position>`` (zero-padded, so the
  fields sort in order) -> the line as JSON;
- ``customer:<customer_id>:orders`` and ``customer:<customer_id>:<status>``: sorted sets
  of order ids scored by placement time (newest first with ``ZREVRANGE``; equal scores
  fall back to the order id, as in SQL), moved between status sets on ship and cancel;
- ``customer_names``: a hash customer_id -> name, to put the name on orders.

Each order change is one Lua script queued on the batch's ``MULTI``: it applies only if
the order's stored version is older than the event (so replays change nothing), and it
moves the order between status sets on the server, where the current status is known.
Reads inside a batch do not see its queued writes, so what the batch needs to know (the
names of customers, the customer of an order placed earlier) comes from a batch-local
cache first and from one pipelined read of committed state otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
from redis.asyncio import Redis

from cqrskit.projection import Projection
from cqrskit.readstore import RedisReadStore, RedisUnitOfWork
from cqrskit.store.base import RecordedEvent
from orders.application.views import LineView, OrderSummary, OrderView, Page
from orders.domain.events import (
    CustomerRegistered,
    OrderCancelled,
    OrderItemAdded,
    OrderPlaced,
    OrderShipped,
)
from orders.domain.values import Address, OrderLine, OrderStatus
from orders.projections._common import (
    PARK,
    cents,
    check_page,
    from_cents,
    from_micros,
    micros,
    occurred_at,
)

__all__ = ["OrderDetailsRedisProjection", "RedisOrderDetailsReader"]

NAME = "order_details"

# KEYS: 1 order hash, 2 lines hash, then (only with a status) 3 the customer's orders and
# 4-6 the customer's placed / shipped / cancelled sets.
# ARGV: 1 stream version, 2 order id, 3 new status or "", 4 item_count increment,
# 5 number n of order field/value pairs, the n pairs, then the lines' field/value pairs.
_APPLY = """
local version = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current >= version then return 0 end
local status = ARGV[3]
if current == 0 and status ~= 'placed' then return 0 end
local old_status = redis.call('HGET', KEYS[1], 'status')
local n = tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'version', ARGV[1], unpack(ARGV, 6, 5 + 2 * n))
if #ARGV > 5 + 2 * n then redis.call('HSET', KEYS[2], unpack(ARGV, 6 + 2 * n)) end
if tonumber(ARGV[4]) ~= 0 then redis.call('HINCRBY', KEYS[1], 'item_count', ARGV[4]) end
if status ~= '' then
  local sets = {placed = KEYS[4], shipped = KEYS[5], cancelled = KEYS[6]}
  local score = redis.call('HGET', KEYS[1], 'placed_at')
  if old_status and old_status ~= status then redis.call('ZREM', sets[old_status], ARGV[2]) end
  redis.call('ZADD', KEYS[3], score, ARGV[2])
  redis.call('ZADD', sets[status], score, ARGV[2])
end
return 1
"""

_SUMMARY_FIELDS = ("status", "item_count", "total_cents", "placed_at")


def order_key(prefix: str, order_id: str) -> str:
    """The hash of one order."""
    return f"{prefix}order:{order_id}"


def lines_key(prefix: str, order_id: str) -> str:
    """The hash of one order's lines."""
    return f"{prefix}lines:{order_id}"


def customer_key(prefix: str, customer_id: str, status: OrderStatus | None) -> str:
    """A customer's orders (all, or those of one status), scored by placement time."""
    return f"{prefix}customer:{customer_id}:{status.value if status else 'orders'}"


def _line_fields(version: int, lines: Sequence[OrderLine]) -> list[Any]:
    pairs: list[Any] = []
    for position, line in enumerate(lines):
        pairs.append(f"{version:012d}:{position:04d}")
        pairs.append(
            orjson.dumps(
                {
                    "product_id": str(line.product_id),
                    "sku": line.sku,
                    "name": line.name,
                    "unit_price_cents": cents(line.unit_price),
                    "quantity": line.quantity,
                }
            )
        )
    return pairs


@dataclass
class _BatchState:
    """What one batch knows beyond the committed state: names and owners seen in it."""

    names: dict[str, str] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    """order id -> customer id."""
    committed_orders: dict[str, list[str]] = field(default_factory=dict)
    """customer id -> orders already committed, for customers registered in this batch."""


class OrderDetailsRedisProjection(Projection[RedisUnitOfWork]):
    """Builds the ``order_details`` read model in Redis; read it with
    :class:`RedisOrderDetailsReader`."""

    name = NAME
    version = 1
    handles = (CustomerRegistered, OrderPlaced, OrderItemAdded, OrderShipped, OrderCancelled)
    failure_policy = PARK

    async def handle(self, events: Sequence[RecordedEvent], uow: RedisUnitOfWork) -> None:
        """Queue each event's effect on the batch's ``MULTI``."""
        state = await self._prefetch(events, uow)
        for recorded in events:
            match recorded.event:
                case CustomerRegistered(customer_id=customer_id, name=name):
                    customer = str(customer_id)
                    uow.pipe.hset(uow.key("customer_names"), customer, name)
                    # Orders projected before their customer (a parked registration
                    # retried later) get the name now, as in SQL: only where it is missing.
                    for order_id in state.committed_orders.get(customer, []):
                        uow.pipe.hsetnx(order_key(uow.prefix, order_id), "customer_name", name)
                case OrderPlaced() as placed:
                    self._placed(uow, recorded, placed, state)
                case OrderItemAdded(order_id=order_id, line=line, total=total):
                    self._apply(
                        uow,
                        recorded,
                        str(order_id),
                        None,
                        {"total_cents": cents(total)},
                        lines=_line_fields(recorded.version, [line]),
                        added_items=line.quantity,
                    )
                case OrderShipped(order_id=order_id, tracking_number=tracking):
                    self._apply(
                        uow,
                        recorded,
                        str(order_id),
                        state.owners.get(str(order_id)),
                        {"status": OrderStatus.SHIPPED.value, "tracking_number": tracking},
                    )
                case OrderCancelled(order_id=order_id, reason=reason):
                    self._apply(
                        uow,
                        recorded,
                        str(order_id),
                        state.owners.get(str(order_id)),
                        {"status": OrderStatus.CANCELLED.value, "cancellation_reason": reason},
                    )

    async def _prefetch(self, events: Sequence[RecordedEvent], uow: RedisUnitOfWork) -> _BatchState:
        """Learn, in one round trip, what the batch needs from the committed state."""
        state = _BatchState()
        registered: list[str] = []
        for recorded in events:
            match recorded.event:
                case CustomerRegistered(customer_id=customer_id, name=name):
                    state.names[str(customer_id)] = name
                    registered.append(str(customer_id))
                case OrderPlaced(order_id=order_id, customer_id=customer_id):
                    state.owners.setdefault(str(order_id), str(customer_id))
        unknown_names = sorted(
            {
                str(r.event.customer_id)
                for r in events
                if isinstance(r.event, OrderPlaced) and str(r.event.customer_id) not in state.names
            }
        )
        unknown_owners = sorted(
            {
                str(r.event.order_id)
                for r in events
                if isinstance(r.event, OrderShipped | OrderCancelled)
                and str(r.event.order_id) not in state.owners
            }
        )
        if not (unknown_names or unknown_owners or registered):
            return state
        async with uow.client.pipeline(transaction=False) as pipe:
            if unknown_names:
                pipe.hmget(uow.key("customer_names"), unknown_names)
            for order in unknown_owners:
                pipe.hget(order_key(uow.prefix, order), "customer_id")
            for customer in registered:
                pipe.zrange(customer_key(uow.prefix, customer, None), 0, -1)
            replies = iter(await pipe.execute())
        if unknown_names:
            for customer, name in zip(unknown_names, next(replies), strict=True):
                if name is not None:
                    state.names[customer] = _text(name)
        for order in unknown_owners:
            owner = next(replies)
            if owner is not None:
                state.owners[order] = _text(owner)
        for customer in registered:
            state.committed_orders[customer] = [_text(o) for o in next(replies)]
        return state

    def _placed(
        self,
        uow: RedisUnitOfWork,
        recorded: RecordedEvent,
        placed: OrderPlaced,
        state: _BatchState,
    ) -> None:
        at = micros(occurred_at(recorded))
        address = placed.shipping_address
        fields: dict[str, Any] = {
            "order_id": str(placed.order_id),
            "customer_id": str(placed.customer_id),
            "status": OrderStatus.PLACED.value,
            "item_count": sum(line.quantity for line in placed.lines),
            "total_cents": cents(placed.total),
            "street": address.street,
            "city": address.city,
            "postal_code": address.postal_code,
            "country": address.country,
            "placed_at": at,
        }
        name = state.names.get(str(placed.customer_id))
        if name is not None:
            fields["customer_name"] = name
        self._apply(
            uow,
            recorded,
            str(placed.order_id),
            str(placed.customer_id),
            fields,
            lines=_line_fields(recorded.version, placed.lines),
        )

    def _apply(
        self,
        uow: RedisUnitOfWork,
        recorded: RecordedEvent,
        order_id: str,
        customer_id: str | None,
        fields: dict[str, Any],
        *,
        lines: Sequence[Any] = (),
        added_items: int = 0,
    ) -> None:
        fields = {**fields, "updated_at": micros(occurred_at(recorded))}
        status = str(fields.get("status", ""))
        keys = [order_key(uow.prefix, order_id), lines_key(uow.prefix, order_id)]
        if status:
            if customer_id is None:
                # Shipped or cancelled, but never placed here: the script skips it anyway.
                return
            keys.append(customer_key(uow.prefix, customer_id, None))
            keys += [customer_key(uow.prefix, customer_id, s) for s in OrderStatus]
        pairs = [item for pair in fields.items() for item in pair]
        uow.pipe.eval(
            _APPLY,
            len(keys),
            *keys,
            recorded.version,
            order_id,
            status,
            added_items,
            len(fields),
            *pairs,
            *lines,
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _line_view(raw: Any) -> LineView:
    line = orjson.loads(raw)
    unit_price = from_cents(line["unit_price_cents"])
    return LineView(
        product_id=UUID(line["product_id"]),
        sku=line["sku"],
        name=line["name"],
        unit_price=unit_price,
        quantity=int(line["quantity"]),
        line_total=unit_price * int(line["quantity"]),
    )


class RedisOrderDetailsReader:
    """Answers :class:`~orders.application.views.OrderDetailsReader` from the Redis model."""

    def __init__(self, store: RedisReadStore) -> None:
        self._store = store

    @property
    def _client(self) -> Redis:
        return self._store.client

    async def _prefix(self) -> str | None:
        """The live version's prefix; ``None`` before the projection was first prepared
        (a model that does not exist yet has no orders)."""
        try:
            return await self._store.live_prefix(NAME)
        except LookupError:
            return None

    async def get_order(self, order_id: UUID) -> OrderView | None:
        """The order with its lines, or ``None`` if there is no such order (yet)."""
        # One round trip for the live version and both hashes: the lookup of the live
        # prefix on its own was a third of this read's time.
        found = await self._store.live_hashes(
            NAME, order_key("", str(order_id)), lines_key("", str(order_id))
        )
        if found is None or not found[0]:
            return None
        raw_order, lines = found
        order = {k: _text(v) for k, v in raw_order.items()}
        return OrderView(
            order_id=UUID(order["order_id"]),
            customer_id=UUID(order["customer_id"]),
            customer_name=order.get("customer_name", ""),
            status=OrderStatus(order["status"]),
            lines=[_line_view(lines[k]) for k in sorted(lines)],
            item_count=int(order["item_count"]),
            total_amount=from_cents(order["total_cents"]),
            shipping_address=Address(
                street=order["street"],
                city=order["city"],
                postal_code=order["postal_code"],
                country=order["country"],
            ),
            tracking_number=order.get("tracking_number"),
            cancellation_reason=order.get("cancellation_reason"),
            placed_at=from_micros(order["placed_at"]),
            updated_at=from_micros(order["updated_at"]),
            version=int(order["version"]),
        )

    async def customer_orders(
        self, customer_id: UUID, status: OrderStatus | None, page: int, page_size: int
    ) -> Page[OrderSummary]:
        """A customer's orders, newest first (ties by order id), optionally of one status."""
        offset = check_page(page, page_size)
        prefix = await self._prefix()
        if prefix is None:
            return Page[OrderSummary].of([], 0, page, page_size)
        key = customer_key(prefix, str(customer_id), status)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zcard(key)
            pipe.zrevrange(key, offset, offset + page_size - 1)
            total, ids = await pipe.execute()
        order_ids = [_text(i) for i in ids]
        items: list[OrderSummary] = []
        if order_ids:
            async with self._client.pipeline(transaction=True) as pipe:
                for order_id in order_ids:
                    pipe.hmget(order_key(prefix, order_id), list(_SUMMARY_FIELDS))
                rows = await pipe.execute()
            for order_id, values in zip(order_ids, rows, strict=True):
                row = dict(zip(_SUMMARY_FIELDS, (_text(v) for v in values), strict=True))
                items.append(
                    OrderSummary(
                        order_id=UUID(order_id),
                        status=OrderStatus(row["status"]),
                        item_count=int(row["item_count"]),
                        total_amount=from_cents(row["total_cents"]),
                        placed_at=from_micros(row["placed_at"]),
                    )
                )
        return Page[OrderSummary].of(items, int(total), page, page_size)
