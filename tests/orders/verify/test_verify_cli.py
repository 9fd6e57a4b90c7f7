"""``orders verify`` against a running ``orders serve``, on SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from e2e.conftest import pg_read_schema
from e2e.test_serve import Server, base_env, orders
from ops.conftest import code_version
from redis import Redis

from orders.auth import Role, TokenService

pytestmark = pytest.mark.slow

__all__ = ["base_env", "pg_read_schema"]  # fixtures, used by name

SECRET = "verify-secret-" + "v" * 40
ADDRESS = {"street": "1 Way", "city": "Leeds", "postal_code": "LS1", "country": "GB"}


@pytest.fixture(params=["sqlite", "postgres+redis"])
def env(request: pytest.FixtureRequest, base_env: dict[str, str]) -> dict[str, str]:
    env = {**base_env, "ORDERS_JWT_SECRET": SECRET}
    if request.param == "postgres+redis":
        postgres_url = request.getfixturevalue("postgres_url")
        env["ORDERS_EVENT_STORE_URL"] = (
            f"{postgres_url}?schema={request.getfixturevalue('pg_schema')}"
        )
        env["ORDERS_READ_DB_URL"] = (
            f"{postgres_url}?schema={request.getfixturevalue('pg_read_schema')}"
        )
        redis_url = request.getfixturevalue("redis_url")
        env["ORDERS_REDIS_URL"] = f"{redis_url}?prefix={request.getfixturevalue('redis_prefix')}"
    return env


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[Server]:
    server = Server(env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class Shop:
    """Writes through the service's HTTP API, as staff."""

    def __init__(self, url: str) -> None:
        token = TokenService(SECRET).issue("staff", Role.STAFF)
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        self.token = ""

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(f"/api/v1{path}", json=body)
        assert response.status_code in (200, 201), response.text
        self.token = response.headers["consistency-token"]
        return dict(response.json())

    def customer(self) -> str:
        body = {"name": "Vera", "email": f"{uuid.uuid4().hex[:10]}@example.org"}
        return str(self.post("/customers", body)["customer_id"])

    def product(self, price: str, stock: int = 1000) -> str:
        body = {"sku": uuid.uuid4().hex[:10], "name": "Widget", "price": price, "stock": stock}
        return str(self.post("/products", body)["product_id"])

    def order(self, customer: str, *items: tuple[str, int]) -> str:
        body = {
            "customer_id": customer,
            "items": [{"product_id": p, "quantity": q} for p, q in items],
            "shipping_address": ADDRESS,
        }
        return str(self.post("/orders", body)["order_id"])

    def wait_for(self, path: str) -> dict[str, Any]:
        """Read through a read model once it has the last write."""
        response = self.http.get(f"/api/v1{path}", headers={"Consistency-Token": self.token})
        assert response.status_code == 200, response.text
        assert "stale-read" not in response.headers
        return dict(response.json())

    def busy_day(self) -> dict[str, str]:
        """Orders placed, extended, shipped and cancelled, with a price change between."""
        customer = self.customer()
        first, second = self.product("2.50"), self.product("10.00")
        shipped = self.order(customer, (first, 2))
        self.post(f"/orders/{shipped}/items", {"product_id": second, "quantity": 1})
        self.post(f"/orders/{shipped}/ship", {"tracking_number": "TRACK-1"})
        self.post(f"/products/{first}/price", {"price": "3.00"})
        cancelled = self.order(customer, (first, 5), (second, 1))
        self.post(f"/orders/{cancelled}/cancel", {"reason": "changed my mind"})
        self.post(f"/products/{second}/restock", {"quantity": 7})
        placed = self.order(customer, (first, 1))
        self.wait_for(f"/orders/{placed}")
        self.wait_for(f"/products/{first}")
        return {"customer": customer, "product": first, "shipped": shipped, "placed": placed}


def verify(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = orders("verify", *args, env=env, timeout=120)
    return result.returncode, result.stdout, result.stderr


def verify_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = verify(env, "--json", *args)
    assert code in (0, 1), out + err
    return code, json.loads(out)


def test_a_healthy_service_has_no_differences_also_under_writes(
    env: dict[str, str], server: Server
) -> None:
    shop = Shop(server.url)
    ids = shop.busy_day()
    code, out, err = verify(env)
    assert code == 0, out + err
    assert out.strip().endswith("0 differences"), out
    for name in ("catalog", "order_details", "order_search", "sales_report", "customers"):
        assert f"{name} v{code_version(name)} at " in out, out
    assert "invariants up to" in out

    stop = threading.Event()
    written: list[str] = []

    def keep_writing() -> None:
        writer = Shop(server.url)
        while not stop.is_set():
            order = writer.order(ids["customer"], (ids["product"], 1))
            writer.post(f"/orders/{order}/ship", {"tracking_number": "T"})
            written.append(order)

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        code, report = verify_json(env)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert written, "the background writer wrote nothing"
    assert code == 0, report
    assert report["differences"] == 0
    assert report["invariants"]["orders"] >= 3


def test_a_planted_difference_is_reported_with_exit_code_1(
    env: dict[str, str], server: Server
) -> None:
    ids = Shop(server.url).busy_day()
    planted_stock = plant_stock(env, ids["product"])
    if "ORDERS_REDIS_URL" in env:
        plant_order_status(env, ids["shipped"])

    code, report = verify_json(env)
    assert code == 1
    by_projection = {r["projection"]: r["differences"] for r in report["projections"]}
    assert by_projection["catalog"] == [
        {
            "table": "products",
            "key": f"product_id={ids['product']}",
            "expected": {"available_stock": planted_stock - 5},
            "actual": {"available_stock": planted_stock},
        }
    ]
    [violation] = report["invariants"]["violations"]
    assert violation["invariant"] == "catalog-stock"
    assert (violation["expected"], violation["actual"]) == (planted_stock - 5, planted_stock)
    if "ORDERS_REDIS_URL" in env:
        assert by_projection["order_details"] == [
            {
                "table": "",
                "key": f"order:{ids['shipped']}",
                "expected": {"status": "shipped"},
                "actual": {"status": "lost"},
            }
        ]
        assert report["differences"] == 3
    else:
        assert report["differences"] == 2

    code, out, _ = verify(env, "--projection", "catalog")
    assert code == 1
    assert f"product_id={ids['product']}" in out
    assert f"available_stock: expected {planted_stock - 5}, actual {planted_stock}" in out
    assert "invariants" not in out
    assert out.strip().endswith("1 difference")


def test_an_unknown_projection_is_a_usage_error(base_env: dict[str, str]) -> None:
    code, _, err = verify({**base_env, "ORDERS_JWT_SECRET": SECRET}, "--projection", "nope")
    assert code == 2
    assert "no projection 'nope'" in err


def plant_stock(env: dict[str, str], product: str) -> int:
    """Add 5 to a product's available stock in the catalog, behind the service's back;
    the new (wrong) stock."""
    update = (
        "UPDATE catalog__products_v1 SET available_stock = available_stock + 5 "
        "WHERE product_id = {p} RETURNING available_stock"
    )
    if "ORDERS_READ_DB_URL" not in env:
        db = sqlite3.connect(Path(env["ORDERS_DATA_DIR"]) / "read.db", timeout=30)
        try:
            with db:
                row = db.execute(update.format(p="?"), (product,)).fetchone()
        finally:
            db.close()
        return int(row[0])

    async def on_postgres() -> int:
        url, schema = env["ORDERS_READ_DB_URL"].split("?schema=")
        conn = await asyncpg.connect(url, server_settings={"search_path": schema})
        try:
            return int(await conn.fetchval(update.format(p="$1"), product))
        finally:
            await conn.close()

    return asyncio.run(on_postgres())


def plant_order_status(env: dict[str, str], order: str) -> None:
    url, prefix = env["ORDERS_REDIS_URL"].split("?prefix=")
    client = Redis.from_url(url)
    try:
        key = f"{prefix}order_details:v1:order:{order}"
        assert client.hget(key, "status") == b"shipped"
        client.hset(key, "status", "lost")
    finally:
        client.close()
