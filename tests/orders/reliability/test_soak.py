"""A bounded soak of ``orders serve``: concurrent clients place, extend, ship and cancel
orders and read them back through consistency tokens. Every answer must be one the
client expects (2xx, or the 409s it provokes on purpose); afterwards every product's
stock is exact and ``orders verify`` finds no difference.

CI runs ``ORDERS_SOAK_ORDERS`` (default 2,000) orders at ``ORDERS_SOAK_CLIENTS`` (32) on
SQLite. ``make soak`` runs 20,000; with ``ORDERS_SOAK_ORDERS`` set, the stores named by
``ORDERS_EVENT_STORE_URL``, ``ORDERS_READ_DB_URL`` and ``ORDERS_REDIS_URL`` are used
when given (fresh schemas and a fresh key prefix are best).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import CONSISTENCY_TIMEOUT
from .harness import ADDRESS, SECRET, Client, Service, events_url, read_store, verify

pytestmark = pytest.mark.slow

ORDERS = int(os.environ.get("ORDERS_SOAK_ORDERS", "2000"))
CLIENTS = int(os.environ.get("ORDERS_SOAK_CLIENTS", "32"))
STORE_SETTINGS = ("ORDERS_EVENT_STORE_URL", "ORDERS_READ_DB_URL", "ORDERS_REDIS_URL")
PLENTY, SCARCE = 1_000_000, max(5, ORDERS // 50)
PLENTIFUL_PRODUCTS, SCARCE_PRODUCTS, CUSTOMERS = 40, 4, 16
DEADLINE = max(240.0, ORDERS * 0.25)
"""Seconds the soak may run before it fails: far beyond what it takes."""

OUT_OF_STOCK = "/problems/insufficient-stock"
NOT_MODIFIABLE = "/problems/order-not-modifiable"


@pytest.fixture
def soak_env(base_env: dict[str, str]) -> dict[str, str]:
    env = {
        **base_env,
        "ORDERS_JWT_SECRET": SECRET,
        "ORDERS_CONSISTENCY_TIMEOUT": CONSISTENCY_TIMEOUT,
        "ORDERS_LOG_LEVEL": "warning",
    }
    if "ORDERS_SOAK_ORDERS" in os.environ:  # `make soak`: the stores it is told to use
        env |= {k: os.environ[k] for k in STORE_SETTINGS if os.environ.get(k)}
    return env


@dataclass
class Shop:
    """What the clients did, and what the stores must show for it."""

    client: Client
    customers: list[str]
    plenty: list[str]
    scarce: list[str]
    rng: random.Random
    stock: dict[str, int] = field(default_factory=dict)
    """Available stock each product must end with."""
    statuses: Counter[str] = field(default_factory=Counter)
    """Answers by request kind and status."""
    journeys: Counter[str] = field(default_factory=Counter)
    placed: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    async def call(
        self, kind: str, method: str, path: str, body: Any = None, **headers: str
    ) -> httpx.Response | None:
        try:
            response = await self.client.request(method, path, body, **headers)
        except httpx.TransportError as exc:
            self.unexpected.append(f"{kind} {method} {path}: {type(exc).__name__}: {exc}")
            return None
        self.statuses[f"{kind} {response.status_code}"] += 1
        return response

    def expect(
        self, response: httpx.Response | None, status: int, problem: str | None = None
    ) -> bool:
        """Whether ``response`` is the answer expected; anything else is noted."""
        if response is None:
            return False
        ok = response.status_code == status
        if ok and problem is not None:
            ok = response.json().get("type") == problem
        if ok and status < 300 and response.request.method == "GET":
            ok = "stale-read" not in response.headers
        if not ok:
            self.unexpected.append(
                f"{response.request.method} {response.request.url.path}: expected {status} "
                f"{problem or ''}, got {response.status_code} {dict(response.headers)} "
                f"{response.text[:500]}"
            )
        return ok

    async def read_order(self, order_id: str, token: str, status: str, lines: int) -> str | None:
        """The order read through ``token``: it shows the write; its ETag."""
        got = await self.call("read", "GET", f"/orders/{order_id}", Consistency_Token=token)
        if not self.expect(got, 200):
            return None
        assert got is not None
        view = got.json()
        if (view["status"], len(view["lines"])) != (status, lines):
            self.unexpected.append(f"order {order_id} read as {view} after {status}/{lines}")
        return got.headers["etag"]

    async def journey(self, n: int) -> None:
        """One order's life: placed (maybe refused), then extended, shipped, cancelled or
        left as it is, with provoked conflicts and reads along the way."""
        rng = self.rng
        customer = rng.choice(self.customers)
        chosen = rng.sample(self.plenty, rng.randint(1, 3))
        short = rng.random() < 0.15
        if short:
            chosen.append(rng.choice(self.scarce))
        items = {p: rng.randint(1, 3) for p in chosen}
        body = {
            "customer_id": customer,
            "items": [{"product_id": p, "quantity": q} for p, q in items.items()],
            "shipping_address": ADDRESS,
        }
        placed = await self.call(
            "place", "POST", "/orders", body, Idempotency_Key=f"soak-{uuid.uuid4()}"
        )
        if short and placed is not None and placed.status_code == 409:
            self.expect(placed, 409, OUT_OF_STOCK)
            self.journeys["refused: out of stock"] += 1
            return
        if not self.expect(placed, 201):
            return
        assert placed is not None
        for p, q in items.items():
            self.stock[p] -= q
        order_id, token = placed.json()["order_id"], placed.headers["consistency-token"]
        self.placed.append(order_id)
        etag = await self.read_order(order_id, token, "placed", len(items))
        if etag is None:
            return

        path, pick = f"/orders/{order_id}", rng.random()
        if pick < 0.3:
            product = rng.choice([p for p in self.plenty if p not in items])
            added = await self.call(
                "add item", "POST", f"{path}/items", {"product_id": product, "quantity": 2}
            )
            if self.expect(added, 200):
                assert added is not None
                self.stock[product] -= 2
                token = added.headers["consistency-token"]
                await self.read_order(order_id, token, "placed", len(items) + 1)
                self.journeys["extended"] += 1
        elif pick < 0.55:
            shipped = await self.call(
                "ship", "POST", f"{path}/ship", {"tracking_number": f"T{n}"}, If_Match=etag
            )
            if self.expect(shipped, 200):
                assert shipped is not None
                self.journeys["shipped"] += 1
                await self.read_order(
                    order_id, shipped.headers["consistency-token"], "shipped", len(items)
                )
                if rng.random() < 0.2:  # too late to cancel: refused, nothing changes
                    late = await self.call("late cancel", "POST", f"{path}/cancel", {"reason": "x"})
                    self.expect(late, 409, NOT_MODIFIABLE)
        elif pick < 0.8:
            cancelled = await self.call("cancel", "POST", f"{path}/cancel", {"reason": "changed"})
            if self.expect(cancelled, 200):
                assert cancelled is not None
                for p, q in items.items():
                    self.stock[p] += q
                self.journeys["cancelled"] += 1
                await self.read_order(
                    order_id, cancelled.headers["consistency-token"], "cancelled", len(items)
                )
                if rng.random() < 0.2:  # a cancelled order cannot ship
                    late = await self.call(
                        "late ship", "POST", f"{path}/ship", {"tracking_number": "LATE"}
                    )
                    self.expect(late, 409, NOT_MODIFIABLE)
        else:
            self.journeys["left placed"] += 1
        if n % 10 == 0:
            await self.browse(customer, token)

    async def browse(self, customer: str, token: str) -> None:
        """The other reads, through the last token: product, list, search, report."""
        product = self.rng.choice(self.plenty + self.scarce)
        for kind, path in (
            ("read product", f"/products/{product}"),
            ("read list", f"/customers/{customer}/orders"),
            ("search", "/orders/search?q=Hull&page_size=5"),
            ("report", "/reports/sales?from=2020-01-01&to=2020-12-31"),
        ):
            got = await self.call(kind, "GET", path, Consistency_Token=token)
            self.expect(got, 200)


async def test_soak_answers_only_what_is_expected_and_verifies_clean(
    soak_env: dict[str, str],
) -> None:
    service = Service(soak_env)
    client = Client(service, CLIENTS)
    try:
        await service.ready()
        customers = [await client.customer() for _ in range(CUSTOMERS)]
        plenty = [await client.product(PLENTY) for _ in range(PLENTIFUL_PRODUCTS)]
        scarce = [await client.product(SCARCE, "99.00") for _ in range(SCARCE_PRODUCTS)]
        shop = Shop(client, customers, plenty, scarce, random.Random())
        shop.stock = dict.fromkeys(plenty, PLENTY) | dict.fromkeys(scarce, SCARCE)
        setup_requests = client.sent

        journeys = iter(range(ORDERS))

        async def worker() -> None:
            for n in journeys:
                await shop.journey(n)

        started = time.monotonic()
        async with asyncio.timeout(DEADLINE):
            await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        took = time.monotonic() - started
        requests = client.sent - setup_requests

        assert not shop.unexpected, f"{len(shop.unexpected)} unexpected: {shop.unexpected[:10]}"
        assert shop.journeys["refused: out of stock"] > 0, "no scarce product ran out"

        products = plenty + scarce
        token = await client.fresh_token()
        shown = {p: await client.stock_shown(p, token) for p in products}
        reading = await read_store(soak_env, products)
        assert shown == shop.stock
        assert reading.available == shop.stock
        assert all(reading.placed[order] == 1 for order in shop.placed)
        assert max(reading.placed.values()) == 1

        verify_started = time.monotonic()
        report = verify(soak_env)
        assert report["differences"] == 0, report
        by_kind: dict[str, dict[int, int]] = defaultdict(dict)
        for key, count in sorted(shop.statuses.items()):
            kind, status = key.rsplit(" ", 1)
            by_kind[kind][int(status)] = count
        print(
            f"\nsoak [{urlsplit(events_url(soak_env)).scheme}"
            f"{'+redis' if 'ORDERS_REDIS_URL' in soak_env else ''}]: {ORDERS} orders at "
            f"{CLIENTS} clients: {requests} requests in {took:.1f}s "
            f"({requests / took:.0f} requests/s), {dict(shop.journeys)}, "
            f"answers {dict(by_kind)}, {reading.events} events, "
            f"{report['differences']} differences (verify {time.monotonic() - verify_started:.1f}s)"
        )
    except BaseException:
        print(service.log_text()[-20_000:])
        raise
    finally:
        await client.aclose()
        service.stop()
