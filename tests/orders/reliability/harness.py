"""What the reliability tests share: a restartable ``orders serve`` process, an async
staff client that follows it across restarts, and readings of the event store itself."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from e2e.test_serve import Server, orders

from cqrskit import open_event_store
from cqrskit.store.base import START
from orders.auth import Role, TokenService
from orders.bootstrap import event_registry
from orders.domain import Product
from orders.domain.events import OrderPlaced

__all__ = [
    "ADDRESS",
    "SECRET",
    "Client",
    "Service",
    "StoreReading",
    "events_url",
    "read_store",
    "verify",
]

SECRET = "reliability-secret-" + "r" * 40
ADDRESS = {"street": "1 Dock Road", "city": "Hull", "postal_code": "HU1", "country": "GB"}
READY_TIMEOUT = 60.0
"""Seconds a (re)started server has to answer /health: imports and store recovery."""
KEEPALIVE_EXPIRY = 2.0
"""Seconds a client keeps an idle connection: less than the server's 5."""


class Service:
    """``orders serve`` in a subprocess that can be SIGKILLed and started again on the
    same data dir / databases (on a new port: clients ask :attr:`url` on every try)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.server = Server(env)
        self.kills = 0
        self.restarts: list[float] = []
        """Seconds from each SIGKILL to the new process answering."""
        self.logs: list[Path] = [self.server.log]

    @property
    def url(self) -> str:
        return self.server.url

    async def ready(self) -> None:
        await asyncio.to_thread(self.server.wait_ready, READY_TIMEOUT)

    async def kill_and_restart(self) -> None:
        """SIGKILL (no shutdown of any kind), then a new process on the same stores."""
        killed = time.monotonic()
        self.server.process.kill()
        await asyncio.to_thread(self.server.process.wait, 30)
        self.kills += 1
        self.server = Server(self.env)
        self.logs.append(self.server.log)
        await self.ready()
        self.restarts.append(time.monotonic() - killed)

    def stop(self) -> int:
        return self.server.stop()

    def log_text(self) -> str:
        return "\n".join(f"== {log.name}\n{log.read_text()}" for log in self.logs)


class Client:
    """Staff requests to whichever process is serving now."""

    def __init__(self, service: Service, concurrency: int) -> None:
        self.service = service
        token = TokenService(SECRET).issue("staff", Role.STAFF)
        self.headers = {"Authorization": f"Bearer {token}"}
        # An idle connection is dropped well before uvicorn's 5 s keep-alive timeout: at
        # httpx's default (5 s too) the server may close a connection just as a request
        # goes out on it, a ReadError that is the client's doing, not the service's.
        limits = httpx.Limits(max_connections=concurrency * 2, keepalive_expiry=KEEPALIVE_EXPIRY)
        self.http = httpx.AsyncClient(limits=limits, timeout=30)
        self.sent = 0

    async def request(
        self, method: str, path: str, body: Any = None, **headers: str
    ) -> httpx.Response:
        self.sent += 1
        return await self.http.request(
            method,
            f"{self.service.url}/api/v1{path}",
            json=body,
            headers={**self.headers, **{k.replace("_", "-"): v for k, v in headers.items()}},
        )

    async def write(self, path: str, body: Any, status: int = 201) -> httpx.Response:
        """A setup write that must succeed (no server is killed meanwhile)."""
        response = await self.request("POST", path, body)
        assert response.status_code == status, response.text
        return response

    async def customer(self) -> str:
        body = {"name": "Rel Iability", "email": f"{uuid.uuid4().hex[:12]}@example.org"}
        return str((await self.write("/customers", body)).json()["customer_id"])

    async def product(self, stock: int, price: str = "4.25") -> str:
        body = {"sku": uuid.uuid4().hex[:12], "name": "Widget", "price": price, "stock": stock}
        return str((await self.write("/products", body)).json()["product_id"])

    async def fresh_token(self) -> str:
        """A consistency token after every write answered so far: a write of its own,
        which touches no product or order."""
        body = {"name": "Last Word", "email": f"{uuid.uuid4().hex[:12]}@example.org"}
        return (await self.write("/customers", body)).headers["consistency-token"]

    async def stock_shown(self, product_id: str, token: str) -> int:
        """The catalog's available stock, read through ``token`` (never stale)."""
        response = await self.request("GET", f"/products/{product_id}", Consistency_Token=token)
        assert response.status_code == 200, response.text
        assert "stale-read" not in response.headers, response.headers
        return int(response.json()["available_stock"])

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class StoreReading:
    """What the event store holds, read directly."""

    placed: Counter[str]
    """OrderPlaced events by order id."""
    available: dict[str, int]
    """Available stock by product, as the Product aggregate counts it."""
    events: int


def events_url(env: dict[str, str]) -> str:
    return env.get("ORDERS_EVENT_STORE_URL") or f"sqlite:///{env['ORDERS_DATA_DIR']}/events.db"


async def read_store(env: dict[str, str], products: list[str]) -> StoreReading:
    """Every OrderPlaced in the store, and each product's stock from its aggregate."""
    store = await open_event_store(events_url(env), event_registry())
    try:
        placed: Counter[str] = Counter()
        events, after = 0, START
        while page := await store.read_all(after, 1000):
            for recorded in page:
                events += 1
                if isinstance(recorded.event, OrderPlaced):
                    placed[str(recorded.event.order_id)] += 1
            after = page[-1].position
        available = {}
        for product_id in products:
            stream = await store.read_stream(f"Product-{product_id}")
            aggregate = Product.from_events(product_id, [r.event for r in stream])
            available[product_id] = aggregate.available
        return StoreReading(placed, available, events)
    finally:
        await store.close()


def verify(env: dict[str, str]) -> dict[str, Any]:
    """``orders verify --json`` beside the running service; its report (exit 0 or 1)."""
    result = orders("verify", "--json", env=env, timeout=300)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert (result.returncode == 0) == (report["differences"] == 0), report
    return report
