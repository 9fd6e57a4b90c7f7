"""A running ``orders serve`` process for the operations commands to work beside.

``service`` is bound twice, like the e2e suite's ``settings``: the embedded default
(SQLite files in a temporary data dir) and PostgreSQL (fresh schemas) with order details
in Redis (a fresh key prefix). The server logs JSON lines, so every test also checks that
whatever it made the server log parses.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from e2e.conftest import pg_read_schema
from e2e.test_serve import Server, base_env, orders

from orders.auth import Role, TokenService
from orders.projections import (
    CatalogProjection,
    CustomerProjection,
    OrderDetailsSqlProjection,
    OrderSearchProjection,
    SalesReportProjection,
)

__all__ = ["Service", "base_env", "pg_read_schema", "service", "wait_until"]

SECRET = "ops-secret-" + "y" * 40
T = TypeVar("T")

CODE_VERSIONS = {
    p.name: p.version
    for p in (
        CatalogProjection,
        CustomerProjection,
        OrderDetailsSqlProjection,
        OrderSearchProjection,
        SalesReportProjection,
    )
}


def code_version(projection: str) -> int:
    """The version of ``projection`` the service's code builds (a first start's)."""
    return CODE_VERSIONS[projection]


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 20) -> T:
    """``check()``'s first truthy answer, asked until ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class Service:
    """A running server, the environment it was started with, and ways to use both."""

    def __init__(self, env: dict[str, str], backend: str, read_schema: str | None) -> None:
        self.env = env
        self.backend = backend
        self.read_schema = read_schema
        self.server = Server(env)
        self.server.wait_ready()
        staff = TokenService(SECRET).issue("staff", Role.STAFF)
        self.http = httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {staff}"}, timeout=10
        )

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``orders ARGS`` with the server's settings (plus ``env``)."""
        return orders(*args, env={**self.env, **env}, timeout=60)

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def register(self, email: str | None = None, **headers: str) -> str:
        body = {"name": "Ops Tester", "email": email or f"ops-{uuid.uuid4().hex[:10]}@example.com"}
        answer = self.http.post("/api/v1/customers", json=body, headers=headers)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["customer_id"])

    def add_product(self) -> str:
        body = {"sku": uuid.uuid4().hex[:10], "name": "Lamp", "price": "12.50", "stock": 10}
        answer = self.http.post("/api/v1/products", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["product_id"])

    def place(self, customer_id: str, product_id: str) -> str:
        body = {
            "customer_id": customer_id,
            "items": [{"product_id": product_id, "quantity": 2}],
            "shipping_address": {
                "street": "1 Quay",
                "city": "Leith",
                "postal_code": "EH6",
                "country": "GB",
            },
        }
        answer = self.http.post("/api/v1/orders", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["order_id"])

    def read_sql(self, statements: list[str]) -> None:
        """Run DDL in the SQL read database, as a DBA would, beside the service."""
        if self.read_schema is None:
            with sqlite3.connect(Path(self.env["ORDERS_DATA_DIR"]) / "read.db") as db:
                for statement in statements:
                    db.execute(statement)
            return

        async def run() -> None:
            conn = await asyncpg.connect(self.env["ORDERS_READ_DB_URL"].split("?")[0])
            try:
                await conn.execute(f'SET search_path TO "{self.read_schema}"')
                for statement in statements:
                    await conn.execute(statement)
            finally:
                await conn.close()

        asyncio.run(run())

    def log_lines(self) -> list[str]:
        return self.server.log.read_text().splitlines()

    def stop(self) -> int:
        self.http.close()
        return self.server.stop()


@pytest.fixture(params=["sqlite", "postgres+redis"])
def service(request: pytest.FixtureRequest, base_env: dict[str, str]) -> Iterator[Service]:
    env = {**base_env, "ORDERS_JWT_SECRET": SECRET, "ORDERS_LOG_FORMAT": "json"}
    read_schema = None
    if request.param == "postgres+redis":
        postgres_url: str = request.getfixturevalue("postgres_url")
        read_schema = request.getfixturevalue("pg_read_schema")
        schema = request.getfixturevalue("pg_schema")
        env |= {
            "ORDERS_EVENT_STORE_URL": f"{postgres_url}?schema={schema}",
            "ORDERS_READ_DB_URL": f"{postgres_url}?schema={read_schema}",
            "ORDERS_REDIS_URL": f"{request.getfixturevalue('redis_url')}?prefix="
            + request.getfixturevalue("redis_prefix"),
        }
    running = Service(env, request.param, read_schema)
    try:
        yield running
    finally:
        running.stop()
    for line in running.log_lines():
        json.loads(line)  # a JSON-logging server writes nothing else
