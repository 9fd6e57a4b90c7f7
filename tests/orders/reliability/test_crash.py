"""``orders serve`` SIGKILLed under a load of PlaceOrder requests, restarted each time on
the same stores, and every request retried with its own Idempotency-Key until it gets a
definite answer: each key places at most one order, and no unit of stock is lost or
made up, as the API, the aggregates and ``orders verify`` all tell."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .harness import ADDRESS, Client, Service, read_store, verify

pytestmark = pytest.mark.slow

REQUESTS = 300
CONCURRENCY = 24
KILLS = 3
PLENTY, SCARCE = 10_000, 150
"""Stock of the products: four never run out, four do (so some orders get 409)."""
LOAD_DEADLINE = 150.0
"""Seconds the whole load (kills and restarts included) may take before the test fails."""
RETRY_PAUSE = 0.1


@dataclass
class Placement:
    key: str
    body: dict[str, Any]
    status: int = 0
    order_id: str | None = None
    tries: int = 0


class Load:
    """Every placement sent until it gets 201 or 409, whatever happens to the server."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.answered = 0
        self.progress = asyncio.Condition()
        self.failures: Counter[str] = Counter()
        self.replayed = 0
        """Keys whose order was written before a kill, the answer lost: the retry replays."""

    async def place(self, placement: Placement, gate: asyncio.Semaphore) -> None:
        async with gate:
            while True:
                placement.tries += 1
                try:
                    response = await self.client.request(
                        "POST", "/orders", placement.body, Idempotency_Key=placement.key
                    )
                except httpx.TransportError as exc:
                    self.failures[type(exc).__name__] += 1
                else:
                    if response.status_code in (201, 409):
                        break
                    assert response.status_code >= 500, (placement.key, response.text)
                    self.failures[f"HTTP {response.status_code}"] += 1
                # The server is down or starting: the next try goes to its successor.
                await asyncio.sleep(RETRY_PAUSE)
        placement.status = response.status_code
        if response.status_code == 201:
            placement.order_id = response.json()["order_id"]
            self.replayed += response.headers.get("idempotent-replayed") == "true"
        else:
            problem = response.json()["type"]
            assert problem == "/problems/insufficient-stock", response.text
        async with self.progress:
            self.answered += 1
            self.progress.notify_all()

    async def wait_answered(self, count: int) -> None:
        async with self.progress:
            await self.progress.wait_for(lambda: self.answered >= count)


async def kill_at_random_moments(service: Service, load: Load, rng: random.Random) -> None:
    """SIGKILL the server after random numbers of answers (requests are always in flight
    then), and start it again on the same stores."""
    moments = sorted(rng.sample(range(REQUESTS // 10, REQUESTS * 8 // 10), KILLS))
    for moment in moments:
        await load.wait_answered(moment)
        await service.kill_and_restart()


async def test_sigkill_under_load_loses_and_duplicates_nothing(env: dict[str, str]) -> None:
    rng = random.Random()
    service = Service(env)
    client = Client(service, CONCURRENCY)
    try:
        await service.ready()
        customer = await client.customer()
        stock = {await client.product(PLENTY): PLENTY for _ in range(4)}
        stock |= {await client.product(SCARCE): SCARCE for _ in range(4)}
        products = list(stock)

        placements = []
        for _ in range(REQUESTS):
            lines = rng.sample(products, rng.randint(1, 3))
            body = {
                "customer_id": customer,
                "items": [{"product_id": p, "quantity": rng.randint(1, 3)} for p in lines],
                "shipping_address": ADDRESS,
            }
            placements.append(Placement(f"crash-{uuid.uuid4()}", body))

        load = Load(client)
        gate = asyncio.Semaphore(CONCURRENCY)
        started = time.monotonic()
        async with asyncio.timeout(LOAD_DEADLINE):
            await asyncio.gather(
                kill_at_random_moments(service, load, rng),
                *(load.place(p, gate) for p in placements),
            )
        took = time.monotonic() - started
        assert service.kills == KILLS
        # A kill with requests in flight leaves some without an answer.
        assert sum(load.failures.values()) > 0, "no request was interrupted by the kills"

        placed = {p.key: p for p in placements if p.status == 201}
        assert placed, "no order was placed"
        assert len({p.order_id for p in placed.values()}) == len(placed)
        # Asked again, every key gives the order it gave before, and writes nothing.
        for p in placed.values():
            again = await client.request("POST", "/orders", p.body, Idempotency_Key=p.key)
            assert again.status_code == 201, again.text
            assert again.json()["order_id"] == p.order_id
            assert again.headers["idempotent-replayed"] == "true"

        expected = dict(stock)
        for p in placed.values():
            for item in p.body["items"]:
                expected[item["product_id"]] -= item["quantity"]
        token = await client.fresh_token()
        shown = {p: await client.stock_shown(p, token) for p in products}
        reading = await read_store(env, products)
        assert shown == expected
        assert reading.available == expected
        assert reading.placed == Counter(p.order_id for p in placed.values())

        report = verify(env)
        assert report["differences"] == 0, report
        assert report["invariants"]["orders"] == len(placed)
        print(
            f"\ncrash [{'postgres+redis' if 'ORDERS_REDIS_URL' in env else 'sqlite'}]: "
            f"{REQUESTS} keys, {client.sent} requests, {service.kills} kills, "
            f"(back in {', '.join(f'{s:.1f}s' for s in service.restarts)}), "
            f"{sum(p.tries > 1 for p in placements)} keys retried, "
            f"{sum(p.tries - 1 for p in placements)} retries "
            f"({dict(load.failures)}), {load.replayed} answers replayed, "
            f"{len(placed)} orders placed, "
            f"{REQUESTS - len(placed)} refused (409), "
            f"{reading.events} events, {report['differences']} differences, "
            f"load {took:.1f}s"
        )
    except BaseException:
        print(service.log_text()[-20_000:])
        raise
    finally:
        await client.aclose()
        service.stop()
