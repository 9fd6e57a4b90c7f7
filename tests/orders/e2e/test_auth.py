"""Authentication and authorization over HTTP, on both configurations.

Bad tokens of every kind are 401 with ``WWW-Authenticate: Bearer``; a customer touching
another customer's data gets the same 404 as for data that does not exist (reads and
writes alike); staff-only routes are 403 for customers; tokens are read from the
``Authorization`` header only, and neither tokens nor the secret reach the logs.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
import warnings
from typing import Any

import jwt
import pytest

from orders.auth import AUDIENCE, ISSUER

from .conftest import SECRET, Api
from .test_api import problem


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "staff", "role": "staff", "aud": AUDIENCE, "iss": ISSUER, "exp": now + 600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():  # HS512 wants a longer key: the point is its refusal
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret, algorithm=algorithm)


BAD_TOKENS: dict[str, str | None] = {
    "missing": None,
    "empty bearer": "Bearer ",
    "basic scheme": "Basic c3RhZmY6c3RhZmY=",
    "not a jwt": "Bearer not.a.jwt",
    "garbage": "Bearer " + "A" * 4000,
    "wrongly signed": "Bearer " + _signed(_claims(), "another-secret-" + "y" * 40),
    "alg none": "Bearer " + _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + ".",
    "alg none, signature kept": "Bearer "
    + _b64({"alg": "none", "typ": "JWT"})
    + "."
    + _b64(_claims())
    + "."
    + _signed(_claims()).split(".")[2],
    "HS512 with the right secret": "Bearer " + _signed(_claims(), algorithm="HS512"),
    "expired": "Bearer " + _signed(_claims(exp=int(time.time()) - 10)),
    "no expiry": "Bearer " + _signed(_claims(exp=None)),
    "wrong audience": "Bearer " + _signed(_claims(aud="another-api")),
    "no audience": "Bearer " + _signed(_claims(aud=None)),
    "wrong issuer": "Bearer " + _signed(_claims(iss="someone-else")),
    "unknown role": "Bearer " + _signed(_claims(role="admin")),
    "customer without a uuid": "Bearer " + _signed(_claims(role="customer", sub="alice")),
    "token with trailing junk": "Bearer " + _signed(_claims()) + "x",
}


async def test_bad_tokens_are_401_with_www_authenticate(api: Api) -> None:
    customer = await api.register()
    product = await api.add_product()
    placed = await api.place(customer, [(product, 1)])
    order, token = placed.json()["order_id"], placed.headers["consistency-token"]
    requests = [
        ("GET", f"/api/v1/orders/{order}", None),
        ("GET", "/api/v1/projections", None),
        ("POST", f"/api/v1/orders/{order}/cancel", {"reason": "nope"}),
        ("POST", f"/api/v1/products/{product}/restock", {"quantity": 5}),
        ("POST", "/api/v1/customers", {"name": "Eve", "email": "eve@example.com"}),
    ]
    sent = 0
    for label, authorization in BAD_TOKENS.items():
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, path, body in requests:
            if path == "/api/v1/customers" and authorization is None:
                continue  # registering is open to anonymous callers
            response = await api.client.request(method, path, json=body, headers=headers)
            sent += 1
            problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer", (label, path)
    assert sent == len(BAD_TOKENS) * len(requests) - 1
    view = await api.get(f"/api/v1/orders/{order}", token)
    assert view.json()["status"] == "placed"
    stock = await api.get(f"/api/v1/products/{product}", token)
    assert stock.json()["available_stock"] == 99


@pytest.mark.parametrize("name", ["token", "access_token", "jwt", "authorization"])
async def test_tokens_in_query_strings_are_ignored(api: Api, name: str) -> None:
    token = api.staff["Authorization"].removeprefix("Bearer ")
    for path in ("/api/v1/projections", "/api/v1/orders/search"):
        response = await api.client.get(path, params={name: token})
        problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
    refused = await api.client.post(
        "/api/v1/products",
        params={name: token},
        json={"sku": "Q-1", "name": "q", "price": "1.00", "stock": 1},
    )
    problem(refused, 401)


async def test_a_customer_cannot_see_or_touch_another_customers_data(api: Api) -> None:
    alice = await api.register("Alice")
    bob = await api.register("Bob")
    product = await api.add_product(stock=10)
    placed = await api.place(alice, [(product, 1)])
    order = placed.json()["order_id"]
    as_bob = api.customer_auth(bob)
    nobody = str(uuid.uuid4())

    async def same_as_missing(method: str, path: str, missing: str, body: Any = None) -> None:
        """Another customer's resource answers exactly like one that does not exist."""
        theirs = problem(await api.client.request(method, path, json=body, headers=as_bob), 404)
        absent = await api.client.request(
            method, path.replace(missing, nobody), json=body, headers=as_bob
        )
        expected = problem(absent, 404)
        assert theirs["type"] == expected["type"], path
        assert theirs["title"] == expected["title"], path
        assert str(theirs["detail"]).replace(missing, nobody) == expected["detail"], path

    await same_as_missing("GET", f"/api/v1/orders/{order}", order)
    await same_as_missing("POST", f"/api/v1/orders/{order}/cancel", order, {"reason": "mine"})
    await same_as_missing(
        "POST", f"/api/v1/orders/{order}/items", order, {"product_id": product, "quantity": 1}
    )
    await same_as_missing("GET", f"/api/v1/customers/{alice}", alice)
    await same_as_missing("GET", f"/api/v1/customers/{alice}/orders", alice)
    # Placing an order for Alice is refused like placing one for nobody.
    for_alice = problem(await api.place(alice, [(product, 1)], headers=as_bob), 404)
    for_nobody = problem(await api.place(nobody, [(product, 1)], headers=as_bob), 404)
    assert str(for_alice["detail"]).replace(alice, nobody) == for_nobody["detail"]
    # Bob's searches never show Alice's order, whatever he searches for.
    for params in ({"q": "Alice"}, {"q": order}, {}, {"status": "placed"}):
        found = await api.get("/api/v1/orders/search", headers=as_bob, params=params)
        assert found.status_code == 200
        assert found.json()["items"] == [], params
    # Nothing Bob tried changed Alice's order or the stock.
    view = await api.get(f"/api/v1/orders/{order}", placed.headers["consistency-token"])
    assert (view.json()["status"], view.json()["item_count"]) == ("placed", 1)
    stock = await api.get(f"/api/v1/products/{product}", placed.headers["consistency-token"])
    assert stock.json()["available_stock"] == 9
    # Alice herself may.
    mine = await api.get(f"/api/v1/orders/{order}", headers=api.customer_auth(alice))
    assert mine.status_code == 200


async def test_staff_only_routes_are_403_for_customers(api: Api) -> None:
    customer = await api.register()
    product = await api.add_product(stock=10)
    placed = await api.place(customer, [(product, 1)])
    order, token = placed.json()["order_id"], placed.headers["consistency-token"]
    me = api.customer_auth(customer)
    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/api/v1/products", {"sku": "C-1", "name": "c", "price": "1.00", "stock": 1}),
        ("POST", f"/api/v1/products/{product}/restock", {"quantity": 1}),
        ("POST", f"/api/v1/products/{product}/price", {"price": "0.01"}),
        ("POST", f"/api/v1/orders/{order}/ship", {"tracking_number": "T-1"}),
        ("GET", "/api/v1/projections", None),
        ("GET", "/api/v1/reports/sales?from=2024-01-01&to=2024-01-02", None),
    ]
    for method, path, body in attempts:
        problem(await api.client.request(method, path, json=body, headers=me), 403)
    view = await api.get(f"/api/v1/products/{product}", token)
    assert (view.json()["price"], view.json()["available_stock"]) == ("19.99", 9)
    assert (await api.get(f"/api/v1/orders/{order}", token)).json()["status"] == "placed"


async def test_no_token_or_secret_in_the_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    customer = await api.register()
    product = await api.add_product()
    me = api.customer_auth(customer)
    tokens = [api.staff["Authorization"], me["Authorization"]]
    tokens += [t for t in BAD_TOKENS.values() if t is not None and len(t) > 20]
    await api.place(customer, [(product, 1)], headers=me)
    for authorization in tokens:
        headers = {"Authorization": authorization, "Idempotency-Key": "k-1"}
        await api.client.get("/api/v1/projections", headers=headers)
        await api.client.post(f"/api/v1/products/{product}/restock", json={}, headers=headers)
        await api.client.post(
            f"/api/v1/products/{uuid.uuid4()}/restock", json={"quantity": 1}, headers=headers
        )
    await api.client.get("/api/v1/projections", params={"access_token": tokens[0][7:]})
    # httpx and httpcore log for the test's own client (it printed the query string it
    # sent); every other record comes from the service.
    service = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert service, "the service logged nothing: the test would prove nothing"
    logged = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in service)
    assert SECRET not in logged
    for authorization in tokens:
        token = authorization.removeprefix("Bearer ")
        # The signature part is what makes a token usable: never in a log line.
        assert token.split(".")[-1] not in logged or len(token.split(".")[-1]) < 8, token[:20]
        assert token not in logged


async def test_problem_bodies_carry_no_token(api: Api) -> None:
    for authorization in [t for t in BAD_TOKENS.values() if t is not None]:
        response = await api.client.get(
            "/api/v1/projections", headers={"Authorization": authorization}
        )
        token = authorization.split(" ", 1)[-1]
        assert len(token) < 8 or token not in response.text
