"""The Orders service over HTTP, on the embedded default and on PostgreSQL + Redis.

``settings`` is bound twice: SQLite files in a temporary data dir, and PostgreSQL (events
and SQL read models, each test in its own schemas) with order details in Redis (under a
key prefix of its own). ``client`` runs the whole app, lifespan included, in process.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from cqrskit.fastapi import app_services
from orders.api import create_app
from orders.auth import Role
from orders.bootstrap import Services, token_service
from orders.settings import Settings

SECRET = "e2e-secret-" + "x" * 40


@pytest.fixture(params=["sqlite", "postgres+redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "data", jwt_secret=SecretStr(SECRET))
    postgres_url: str = request.getfixturevalue("postgres_url")
    schema: str = request.getfixturevalue("pg_schema")
    read_schema: str = request.getfixturevalue("pg_read_schema")
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    return Settings(
        data_dir=tmp_path / "data",
        jwt_secret=SecretStr(SECRET),
        event_store_url=f"{postgres_url}?schema={schema}",
        read_db_url=f"{postgres_url}?schema={read_schema}",
        redis_url=f"{redis_url}?prefix={prefix}",
    )


@pytest.fixture
async def pg_read_schema(postgres_url: str) -> AsyncIterator[str]:
    """A second fresh schema, for the SQL read models, dropped afterwards."""
    import asyncpg

    name = f"r_{uuid.uuid4().hex[:16]}"
    yield name
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


class Api:
    """An HTTP client of the app with tokens at hand."""

    def __init__(self, client: httpx.AsyncClient, services: Services) -> None:
        self.client = client
        self.services = services
        self.staff = self.auth(token_service(services.settings).issue("staff", Role.STAFF))

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def customer_auth(self, customer_id: str) -> dict[str, str]:
        return self.auth(token_service(self.services.settings).issue(customer_id, Role.CUSTOMER))

    async def register(self, name: str = "Ada Lovelace", email: str | None = None) -> str:
        email = email or f"ada-{uuid.uuid4().hex[:8]}@example.com"
        response = await self.client.post("/api/v1/customers", json={"name": name, "email": email})
        assert response.status_code == 201, response.text
        return str(response.json()["customer_id"])

    async def add_product(
        self, price: str = "19.99", stock: int = 100, name: str = "Keyboard", sku: str | None = None
    ) -> str:
        body = {
            "sku": sku or f"SKU-{uuid.uuid4().hex[:8]}",
            "name": name,
            "price": price,
            "stock": stock,
        }
        response = await self.client.post("/api/v1/products", json=body, headers=self.staff)
        assert response.status_code == 201, response.text
        return str(response.json()["product_id"])

    async def place(
        self,
        customer_id: str,
        items: list[tuple[str, int]],
        headers: dict[str, str] | None = None,
        city: str = "London",
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "customer_id": customer_id,
            "items": [{"product_id": p, "quantity": q} for p, q in items],
            "shipping_address": {
                "street": "1 High Street",
                "city": city,
                "postal_code": "N1 9GU",
                "country": "GB",
            },
        }
        return await self.client.post(
            "/api/v1/orders", json=body, headers=headers or self.customer_auth(customer_id)
        )

    async def get(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or self.staff)
        if token is not None:
            headers["Consistency-Token"] = token
        return await self.client.get(path, headers=headers, **kwargs)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as client:
            services = app_services(app)
            assert isinstance(services, Services)
            yield Api(client, services)
