"""The projection benchmark's orders, shared by cqrskit's side and the peer's.

Kept free of cqrskit (and of anything heavy) so that the peer's rebuild process, which
imports it, measures its own memory and not ours.
"""

from __future__ import annotations

import os
import resource
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import orjson

DATA: Final = Path(os.environ.get("CQRSKIT_BENCH_DATA", "/tmp/cqrskit-bench"))
EVENTS_PER_ORDER: Final = 10  # placed, 8 lines, shipped
CUSTOMERS: Final = 5000
PLACED, LINE_ADDED, SHIPPED = "bench.OrderPlaced", "bench.OrderLineAdded", "bench.OrderShipped"

# The read model both sides build, in SQL both databases run: ``{orders}`` and
# ``{customers}`` are each side's table names, ``{p}`` its driver's placeholder.
CREATE_ORDERS: Final = (
    "CREATE TABLE IF NOT EXISTS {orders} (order_id TEXT PRIMARY KEY, customer TEXT, "
    "status TEXT, lines BIGINT NOT NULL, total_cents BIGINT NOT NULL, version BIGINT NOT NULL)"
)
CREATE_CUSTOMERS: Final = (
    "CREATE TABLE IF NOT EXISTS {customers} (customer TEXT PRIMARY KEY, "
    "orders BIGINT NOT NULL, revenue_cents BIGINT NOT NULL)"
)
ORDER_UPSERT: Final = (
    "INSERT INTO {orders} (order_id, customer, status, lines, total_cents, version) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (order_id) DO UPDATE SET "
    "customer = COALESCE(excluded.customer, {orders}.customer), "
    "status = COALESCE(excluded.status, {orders}.status), "
    "lines = {orders}.lines + excluded.lines, "
    "total_cents = {orders}.total_cents + excluded.total_cents, "
    "version = excluded.version WHERE {orders}.version < excluded.version"
)
CUSTOMER_UPSERT: Final = (
    "INSERT INTO {customers} (customer, orders, revenue_cents) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (customer) DO UPDATE SET orders = {customers}.orders + excluded.orders, "
    "revenue_cents = {customers}.revenue_cents + excluded.revenue_cents"
)
MODEL_TOTALS: Final = (
    "SELECT (SELECT count(*) FROM {orders}) AS orders, "
    "(SELECT coalesce(sum(lines), 0) FROM {orders}) AS lines, "
    "(SELECT coalesce(sum(total_cents), 0) FROM {orders}) AS total_cents, "
    "(SELECT count(*) FROM {orders} WHERE status = 'shipped') AS shipped, "
    "(SELECT coalesce(sum(orders), 0) FROM {customers}) AS customer_orders, "
    "(SELECT coalesce(sum(revenue_cents), 0) FROM {customers}) AS revenue_cents"
)
"""What both sides' read models must agree on; ``{orders}`` and ``{customers}`` are their
tables."""
TOTALS: Final = ("orders", "lines", "total_cents", "shipped", "customer_orders", "revenue_cents")


def order_rows(count: int, offset: int = 0) -> list[tuple[str, int, str, str, str]]:
    """Encoded events of whole orders: (stream, version, type, data, metadata)."""
    now = datetime.now(UTC).isoformat()
    rows = []
    for n in range(offset, offset + count):
        order, step = divmod(n, EVENTS_PER_ORDER)
        stream = f"order-{order}"
        customer = f"customer-{order % CUSTOMERS}"
        if step == 0:
            event_type, data = PLACED, {"customer": customer}
        elif step == EVENTS_PER_ORDER - 1:
            total = sum((1 + (order + i) % 3) * (100 + i) for i in range(1, EVENTS_PER_ORDER - 1))
            event_type = SHIPPED
            data = {"customer": customer, "total_cents": total}
        else:
            event_type = LINE_ADDED
            data = {
                "sku": f"SKU-{step}",
                "quantity": 1 + (order + step) % 3,
                "price_cents": 100 + step,
            }
        message_id = str(uuid.uuid4())
        metadata = {
            "message_id": message_id,
            "timestamp": now,
            "correlation_id": message_id,
            "causation_id": None,
            "user_id": None,
        }
        rows.append(
            (
                stream,
                step + 1,
                event_type,
                orjson.dumps(data).decode(),
                orjson.dumps(metadata).decode(),
            )
        )
    return rows


def peak_rss_mb() -> float:
    """This process's peak RSS. Not ``ru_maxrss``: Linux carries that across ``exec`` from
    the parent, so a child would report the bulk loader's peak instead of its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
