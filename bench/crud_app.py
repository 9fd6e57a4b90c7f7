"""The baseline for bench_http.py: the Orders API as a user would write it without CQRS.

    .venv/bin/python bench/crud_app.py --port 8001 \\
        --url postgresql://postgres@127.0.0.1:5432/test --schema crud_bench

FastAPI and asyncpg over three plain tables in one PostgreSQL schema (``customers``,
``products`` with their stock, ``orders`` with the lines as JSON), created at startup.
Placing an order is one transaction: check the customer, lock and read each product's
price and stock (``SELECT … FOR UPDATE``, in product order so that two orders cannot
deadlock), decrement the stock, insert the order. Reading one is a primary-key lookup.
No events, no projections, no idempotency records, no consistency tokens.

The routes, bodies and bearer tokens are the Orders service's (the same ``/api/v1`` paths,
the same pydantic bounds, the same HS256 token check), so the one load generator drives
both, and what differs is what CQRS and event sourcing add. Served by one uvicorn worker
with the same settings as ``orders serve``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID, uuid4

import asyncpg
import orjson
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from orders.auth import InvalidToken, Principal, TokenService

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id uuid PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS products (
    product_id uuid PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL,
    price numeric(12, 2) NOT NULL, stock bigint NOT NULL CHECK (stock >= 0)
);
CREATE TABLE IF NOT EXISTS orders (
    order_id uuid PRIMARY KEY, customer_id uuid NOT NULL REFERENCES customers,
    status text NOT NULL, lines jsonb NOT NULL, shipping_address jsonb NOT NULL,
    total numeric(14, 2) NOT NULL, placed_at timestamptz NOT NULL, version int NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id, placed_at);
"""

Text = Annotated[str, Field(min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CustomerBody(_Body):
    name: Text
    email: Annotated[
        str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    ]


class ProductBody(_Body):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    name: Text
    price: Annotated[Decimal, Field(ge=Decimal("0.01"), max_digits=12, decimal_places=2)]
    stock: Annotated[int, Field(ge=0, le=1_000_000_000)]


class ItemBody(_Body):
    product_id: UUID
    quantity: Annotated[int, Field(ge=1, le=10_000)]


class AddressBody(_Body):
    street: Text
    city: Annotated[str, Field(min_length=1, max_length=100)]
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(min_length=2, max_length=100)]


class PlaceOrderBody(_Body):
    customer_id: UUID
    items: Annotated[list[ItemBody], Field(min_length=1, max_length=100)]
    shipping_address: AddressBody


_bearer = HTTPBearer(auto_error=False)


def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool  # type: ignore[no-any-return]


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise HTTPException(401, "a bearer token is required")
    try:
        return request.app.state.tokens.verify(credentials.credentials)  # type: ignore[no-any-return]
    except InvalidToken as exc:
        raise HTTPException(401, str(exc)) from None


Pool = Annotated[asyncpg.Pool, Depends(_pool)]
Caller = Annotated[Principal, Depends(_caller)]


def create_app(url: str, schema: str, secret: str) -> FastAPI:
    """The CRUD app on the PostgreSQL database at ``url``, its tables in ``schema``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup = await asyncpg.connect(url)
        try:
            await setup.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await setup.execute(f'SET search_path TO "{schema}"; {SCHEMA_SQL}')
        finally:
            await setup.close()
        app.state.pool = await asyncpg.create_pool(
            url, min_size=4, max_size=16, server_settings={"search_path": schema}
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(title="Orders, CRUD baseline", lifespan=lifespan)
    app.state.tokens = TokenService(secret)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/customers", status_code=201)
    async def register_customer(body: CustomerBody, db: Pool, who: Caller) -> dict[str, Any]:
        customer_id = uuid4()
        try:
            await db.execute(
                "INSERT INTO customers VALUES ($1, $2, $3)", customer_id, body.name, body.email
            )
        except asyncpg.UniqueViolationError:
            raise HTTPException(409, "email taken") from None
        return {"customer_id": customer_id}

    @app.post("/api/v1/products", status_code=201)
    async def add_product(body: ProductBody, db: Pool, who: Caller) -> dict[str, Any]:
        if not who.is_staff:
            raise HTTPException(403, "only staff may do this")
        product_id = uuid4()
        try:
            await db.execute(
                "INSERT INTO products VALUES ($1, $2, $3, $4, $5)",
                product_id,
                body.sku,
                body.name,
                body.price,
                body.stock,
            )
        except asyncpg.UniqueViolationError:
            raise HTTPException(409, "sku taken") from None
        return {"product_id": product_id}

    @app.post("/api/v1/orders", status_code=201)
    async def place_order(body: PlaceOrderBody, db: Pool, who: Caller) -> dict[str, Any]:
        if not who.is_staff and who.customer_id != body.customer_id:
            raise HTTPException(404, f"customer {body.customer_id} does not exist")
        wanted = {item.product_id: item.quantity for item in body.items}
        if len(wanted) != len(body.items):
            raise HTTPException(422, "a product appears more than once in items")
        order_id = uuid4()
        async with db.acquire() as conn, conn.transaction():
            if (
                await conn.fetchval(
                    "SELECT 1 FROM customers WHERE customer_id = $1", body.customer_id
                )
                is None
            ):
                raise HTTPException(404, f"customer {body.customer_id} does not exist")
            rows = await conn.fetch(
                "SELECT product_id, sku, name, price, stock FROM products "
                "WHERE product_id = ANY($1::uuid[]) ORDER BY product_id FOR UPDATE",
                list(wanted),
            )
            if len(rows) != len(wanted):
                raise HTTPException(404, "a product does not exist")
            lines = []
            for row in rows:
                quantity = wanted[row["product_id"]]
                if row["stock"] < quantity:
                    raise HTTPException(409, f"insufficient stock of {row['sku']}")
                lines.append(
                    {
                        "product_id": str(row["product_id"]),
                        "sku": row["sku"],
                        "name": row["name"],
                        "unit_price": str(row["price"]),
                        "quantity": quantity,
                    }
                )
            await conn.executemany(
                "UPDATE products SET stock = stock - $2 WHERE product_id = $1",
                [(row["product_id"], wanted[row["product_id"]]) for row in rows],
            )
            total = sum(Decimal(line["unit_price"]) * line["quantity"] for line in lines)
            await conn.execute(
                "INSERT INTO orders VALUES ($1, $2, 'placed', $3, $4, $5, $6, 1)",
                order_id,
                body.customer_id,
                orjson.dumps(lines).decode(),
                body.shipping_address.model_dump_json(),
                total,
                datetime.now(UTC),
            )
        return {"order_id": order_id}

    @app.get("/api/v1/orders/{order_id}")
    async def get_order(order_id: UUID, db: Pool, who: Caller) -> dict[str, Any]:
        row = await db.fetchrow("SELECT * FROM orders WHERE order_id = $1", order_id)
        if row is None or (not who.is_staff and who.customer_id != row["customer_id"]):
            raise HTTPException(404, f"order {order_id} does not exist")
        return {
            "order_id": row["order_id"],
            "customer_id": row["customer_id"],
            "status": row["status"],
            "lines": orjson.loads(row["lines"]),
            "shipping_address": orjson.loads(row["shipping_address"]),
            "total": str(row["total"]),
            "placed_at": row["placed_at"],
            "version": row["version"],
        }

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--url", default=os.environ.get("CRUD_DATABASE_URL"), required=False)
    parser.add_argument("--schema", default=os.environ.get("CRUD_SCHEMA", "crud_bench"))
    args = parser.parse_args()
    if not args.url:
        parser.error("--url (or CRUD_DATABASE_URL) is required")
    secret = os.environ.get("ORDERS_JWT_SECRET")
    if not secret:
        parser.error("ORDERS_JWT_SECRET must be set (the tokens are the Orders service's)")
    # The settings `orders serve` runs uvicorn with, minus its logging configuration.
    uvicorn.run(
        create_app(args.url, args.schema, secret),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
