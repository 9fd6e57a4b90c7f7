"""Input limits over HTTP, on both configurations: whatever a client sends, the answer is
a 4xx problem naming what was wrong (never a 5xx), and nothing changes.

Covers the request-body cap (declared, chunked and lying lengths), bounds of every field
and parameter, numbers JSON should not carry (NaN, Infinity, ``1e999999``), bad UUIDs,
Unicode that storage cannot hold, and SQL / full-text / Redis-glob injection attempts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from cqrskit.fastapi import DEFAULT_MAX_BODY_BYTES
from orders.api import create_app
from orders.settings import Settings

from .conftest import Api
from .test_api import problem

ADDRESS = {"street": "1 High Street", "city": "London", "postal_code": "N1", "country": "GB"}
JSON = {"Content-Type": "application/json"}


def order_body(customer: str, product: str, lines: int = 1, **address: str) -> dict[str, Any]:
    items = [{"product_id": product, "quantity": 1}]
    items += [{"product_id": str(uuid.uuid4()), "quantity": 1} for _ in range(lines - 1)]
    return {"customer_id": customer, "items": items, "shipping_address": {**ADDRESS, **address}}


def padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON of exactly ``size`` bytes (trailing whitespace is valid JSON)."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


async def available(api: Api, product: str, token: str | None = None) -> int:
    view = await api.get(f"/api/v1/products/{product}", token)
    assert view.status_code == 200, view.text
    return int(view.json()["available_stock"])


# -- the body cap ---------------------------------------------------------------------


async def test_bodies_past_the_cap_are_413_however_they_come(api: Api) -> None:
    customer = await api.register()
    product = await api.add_product(stock=10)
    me = api.customer_auth(customer)
    body = order_body(customer, product)
    limit = DEFAULT_MAX_BODY_BYTES

    at_limit = await api.client.post(
        "/api/v1/orders", content=padded(body, limit), headers={**me, **JSON}
    )
    assert at_limit.status_code == 201, at_limit.text
    token = at_limit.headers["consistency-token"]

    over = padded(body, limit + 1)
    declared = await api.client.post("/api/v1/orders", content=over, headers={**me, **JSON})
    assert str(limit) in str(problem(declared, 413)["detail"])

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for start in range(0, len(over), 4096):
            yield over[start : start + 4096]

    chunked = await api.client.post("/api/v1/orders", content=chunks(), headers={**me, **JSON})
    assert "request body" in str(problem(chunked, 413)["detail"])

    # A Content-Length that lies low: the bytes are counted as they are read.
    lying = await api.client.post(
        "/api/v1/orders", content=over, headers={**me, **JSON, "Content-Length": "10"}
    )
    problem(lying, 413)
    # A huge or malformed Content-Length gains nothing either.
    for length in (b"9" * 30, b"-1", "²".encode("latin-1")):
        answer = await api.client.post(
            "/api/v1/orders", content=over, headers={**me, **JSON, "Content-Length": length}
        )
        problem(answer, 413)

    assert await available(api, product, token) == 9  # only the order at the limit
    # Routes without a body, and the anonymous registration route, are capped too.
    problem(await api.client.post("/api/v1/customers", content=over, headers=JSON), 413)


async def test_the_cap_is_configurable(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings, max_body_bytes=1024)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as client:
            small = {"name": "Small", "email": f"s-{uuid.uuid4().hex[:8]}@example.com"}
            assert (await client.post("/api/v1/customers", json=small)).status_code == 201
            large = {**small, "name": "x" * 2000}
            answer = problem(await client.post("/api/v1/customers", json=large), 413)
            assert "1024 bytes" in str(answer["detail"])
            document = (await client.get("/openapi.json")).json()
            assert "413" in document["paths"]["/api/v1/customers"]["post"]["responses"]


# -- bounds of fields and parameters ----------------------------------------------------


async def test_every_bound_is_a_422_naming_its_field(api: Api) -> None:
    customer = await api.register()
    product = await api.add_product(stock=10)
    placed = await api.place(customer, [(product, 1)])
    order, token = placed.json()["order_id"], placed.headers["consistency-token"]
    staff = api.staff
    long = "x" * 1000

    def new(**fields: Any) -> dict[str, Any]:
        return {"sku": "S1", "name": "n", "price": "1", "stock": 1, **fields}

    items = f"/api/v1/orders/{order}/items"
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("/api/v1/orders", "items", order_body(customer, product, lines=101), "items"),
        ("/api/v1/orders", "items", {**order_body(customer, product), "items": []}, "items"),
        ("/api/v1/orders", "street", order_body(customer, product, street=long), "street"),
        ("/api/v1/orders", "city", order_body(customer, product, city=long), "city"),
        ("/api/v1/orders", "postal", order_body(customer, product, postal_code=long), "postal"),
        ("/api/v1/orders", "country", order_body(customer, product, country=long), "country"),
        ("/api/v1/customers", "name", {"name": "x" * 201, "email": "a@b.co"}, "name"),
        ("/api/v1/customers", "blank", {"name": "   ", "email": "a@b.co"}, "name"),
        ("/api/v1/customers", "email", {"name": "A", "email": "a@" + "b" * 260 + ".co"}, "email"),
        ("/api/v1/products", "sku", new(sku="S" * 65), "sku"),
        ("/api/v1/products", "sku%", new(sku="a%"), "sku"),
        ("/api/v1/products", "price0", new(price="0"), "price"),
        ("/api/v1/products", "cents", new(price="0.001"), "price"),
        ("/api/v1/products", "rich", new(price="1000000000.01"), "price"),
        ("/api/v1/products", "stock-", new(stock=-1), "stock"),
        ("/api/v1/products", "stock+", new(stock=10**9 + 1), "stock"),
        ("/api/v1/products", "extra", new(x=1), "x"),
        (f"/api/v1/products/{product}/restock", "q0", {"quantity": 0}, "quantity"),
        (f"/api/v1/products/{product}/restock", "q+", {"quantity": 10_001}, "quantity"),
        (f"/api/v1/products/{product}/restock", "qf", {"quantity": 1.5}, "quantity"),
        (f"/api/v1/products/{product}/price", "neg", {"price": "-1"}, "price"),
        (items, "q+", {"product_id": product, "quantity": 10**6}, "quantity"),
        (f"/api/v1/orders/{order}/ship", "long", {"tracking_number": "T" * 65}, "tracking_number"),
        (f"/api/v1/orders/{order}/cancel", "long", {"reason": "r" * 501}, "reason"),
    ]  # fmt: skip
    for path, label, body, field in cases:
        answer = problem(await api.client.post(path, json=body, headers=staff), 422)
        assert field in str(answer["detail"]), (label, answer)
    queries: list[tuple[str, dict[str, Any], str]] = [
        (f"/api/v1/customers/{customer}/orders", {"page": 0}, "page"),
        (f"/api/v1/customers/{customer}/orders", {"page": 1_000_001}, "page"),
        (f"/api/v1/customers/{customer}/orders", {"page_size": 0}, "page_size"),
        (f"/api/v1/customers/{customer}/orders", {"page_size": 101}, "page_size"),
        (f"/api/v1/customers/{customer}/orders", {"status": "lost"}, "status"),
        ("/api/v1/orders/search", {"page": "1e3"}, "page"),
        ("/api/v1/orders/search", {"page": "9" * 40}, "page"),
        ("/api/v1/orders/search", {"page_size": 1000}, "page_size"),
        ("/api/v1/orders/search", {"q": "x" * 201}, "q"),
        ("/api/v1/orders/search", {"min_total": "-1"}, "min_total"),
        ("/api/v1/orders/search", {"max_total": "1e16"}, "max_total"),
        ("/api/v1/reports/sales", {"from": "2024-01-01", "to": "2024-01-01", "top": 21}, "top"),
        ("/api/v1/reports/sales", {"from": "2024-01-01", "to": "2026-01-01"}, "366"),
        ("/api/v1/reports/sales", {"from": "2024-02-01", "to": "2024-01-01"}, "to"),
        ("/api/v1/reports/sales", {"from": "2024-02-30", "to": "2024-03-01"}, "from"),
    ]
    for path, params, field in queries:
        answer = problem(await api.get(path, params=params), 422)
        assert field in str(answer["detail"]), (path, params, answer)
    assert await available(api, product, token) == 9  # nothing above changed anything


async def test_numbers_json_should_not_carry(api: Api) -> None:
    added = await api.client.post(
        "/api/v1/products",
        json={"sku": "NUM-1", "name": "Numbers", "price": "19.99", "stock": 10},
        headers=api.staff,
    )
    product, token = added.json()["product_id"], added.headers["consistency-token"]
    restock = f"/api/v1/products/{product}/restock"
    price = f"/api/v1/products/{product}/price"
    bodies = [
        (restock, b'{"quantity": NaN}', "quantity"),
        (restock, b'{"quantity": Infinity}', "quantity"),
        (restock, b'{"quantity": -Infinity}', "quantity"),
        (restock, b'{"quantity": 1e999999}', "quantity"),
        (restock, b'{"quantity": 1e-999999}', "quantity"),
        (restock, b'{"quantity": 10000000000000000000000}', "quantity"),
        (restock, b'{"quantity": "1e3"}', "quantity"),
        (restock, b'{"quantity": 1' + b"0" * 5000 + b"}", "body"),  # past Python's 4300 digits
        (price, b'{"price": NaN}', "price"),
        (price, b'{"price": Infinity}', "price"),
        (price, b'{"price": 1e999999}', "price"),
        (price, b'{"price": "1e999999"}', "price"),
        (price, b'{"price": "1e999999999999999999"}', "price"),
        (price, b'{"price": "1e-999999999"}', "price"),
        (price, b'{"price": "NaN"}', "price"),
        (price, b'{"price": "sNaN"}', "price"),
        (price, b'{"price": "-Infinity"}', "price"),
        (price, b'{"price": "0x10"}', "price"),
        (price, b'{"price": "' + b"9" * 10_000 + b'"}', "price"),
    ]
    for path, content, field in bodies:
        started = time.perf_counter()
        response = await api.client.post(path, content=content, headers={**api.staff, **JSON})
        elapsed = time.perf_counter() - started
        assert 400 <= response.status_code < 500, (content[:40], response.text)
        answer = problem(response, response.status_code)
        assert field in str(answer["detail"]), (content[:40], answer)
        # Not a benchmark: a guard against parsing that grows with the exponent, which
        # would take seconds or hang rather than a few milliseconds.
        assert elapsed < 2, (content[:40], elapsed)
    search = [
        {"min_total": "NaN"},
        {"min_total": "Infinity"},
        {"max_total": "-Infinity"},
        {"min_total": "1e999999"},
        {"max_total": "1e999999999999999999"},
        {"min_total": "0x10"},
    ]
    for params in search:
        answer = problem(await api.get("/api/v1/orders/search", params=params), 422)
        assert next(iter(params)) in str(answer["detail"]), (params, answer)
    view = await api.get(f"/api/v1/products/{product}", token)
    assert (view.json()["available_stock"], view.json()["price"]) == (10, "19.99")


async def test_tiny_and_extreme_but_valid_bounds_answer_like_their_plain_equivalents(
    api: Api,
) -> None:
    customer = await api.register("Bounds")
    product = await api.add_product("10.00", 10)
    placed = await api.place(customer, [(product, 1)])
    token = placed.headers["consistency-token"]
    plain = await api.get("/api/v1/orders/search", token, params={"min_total": "0.01"})
    assert plain.status_code == 200, plain.text
    for params in ({"min_total": "1e-999999999"}, {"min_total": "0E-50"}, {"max_total": "1E+15"}):
        answer = await api.get("/api/v1/orders/search", params=params)
        assert answer.status_code == 200, (params, answer.text)
        assert answer.json() == plain.json(), params
    for moment in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        for name in ("placed_from", "placed_to"):
            answer = problem(await api.get("/api/v1/orders/search", params={name: moment}), 422)
            assert name in str(answer["detail"])
    edge = await api.get(
        "/api/v1/orders/search",
        params={"placed_from": "0001-01-01T00:00:00Z", "placed_to": "9999-12-31T23:59:59Z"},
    )
    assert edge.json() == plain.json()


async def test_bad_uuids_are_422_naming_the_parameter(api: Api) -> None:
    customer = await api.register()
    bad = [
        "not-a-uuid",
        "00000000-0000-0000-0000-00000000000g",
        "0" * 33,
        "%00",
        "'; DROP TABLE events; --",
        "*",
        "x" * 2000,
    ]
    for value in bad:
        for path, name in (
            (f"/api/v1/orders/{value}", "order_id"),
            (f"/api/v1/products/{value}", "product_id"),
            (f"/api/v1/customers/{value}", "customer_id"),
            (f"/api/v1/customers/{value}/orders", "customer_id"),
        ):
            answer = problem(await api.get(path), 422)
            assert name in str(answer["detail"]), (path, answer)
        answer = problem(
            await api.client.post(
                f"/api/v1/orders/{value}/cancel", json={"reason": "r"}, headers=api.staff
            ),
            422,
        )
        assert "order_id" in str(answer["detail"])
    body = order_body(customer, "not-a-uuid")
    answer = problem(await api.client.post("/api/v1/orders", json=body, headers=api.staff), 422)
    assert "product_id" in str(answer["detail"])


# -- Unicode --------------------------------------------------------------------------


def _raw_json(**fields: str) -> bytes:
    """JSON whose strings are written as given: escapes such as a lone ``\\ud800`` pass
    through as the six characters a hostile client would send."""
    return ("{" + ", ".join(f'"{k}": "{v}"' for k, v in fields.items()) + "}").encode()


async def test_nul_controls_and_lone_surrogates_are_refused(api: Api) -> None:
    customer = await api.register()
    product = await api.add_product(stock=10)
    placed = await api.place(customer, [(product, 1)])
    order, token = placed.json()["order_id"], placed.headers["consistency-token"]
    for escape in ("\\u0000", "\\ud800", "\\udfff", "\\ud83d", "\\u001b[31m", "\\u0007"):
        for path, fields, name in (
            ("/api/v1/customers", {"name": f"A{escape}B", "email": "x@y.zz"}, "name"),
            ("/api/v1/customers", {"name": "A", "email": f"x{escape}@y.zz"}, "email"),
            (f"/api/v1/orders/{order}/cancel", {"reason": f"no{escape}"}, "reason"),
            (f"/api/v1/orders/{order}/ship", {"tracking_number": f"T{escape}1"}, "tracking"),
        ):
            response = await api.client.post(
                path, content=_raw_json(**fields), headers={**api.staff, **JSON}
            )
            answer = problem(response, 422)
            assert name in str(answer["detail"]), (escape, path, answer)
        placed = await api.client.post(
            "/api/v1/orders",
            content=json.dumps(order_body(customer, product)).replace("London", f"Lon{escape}"),
            headers={**api.staff, **JSON},
        )
        assert "city" in str(problem(placed, 422)["detail"])
    for text in ("\x00", "a\x00b", "\x1b[2J", "\x7f"):
        answer = problem(await api.get("/api/v1/orders/search", params={"q": text}), 422)
        assert "q" in str(answer["detail"])
    view = await api.get(f"/api/v1/orders/{order}", token)
    assert view.json()["status"] == "placed"  # neither shipped nor cancelled
    assert await available(api, product, token) == 9


async def test_bidi_overrides_and_long_combining_sequences_are_stored_verbatim(api: Api) -> None:
    names = [
        "Ada \u202eecalevoL\u202c",  # right-to-left override, then pop
        "\u05e9\u05dc\u05d5\u05dd \u200f",  # Hebrew with a right-to-left mark
        "Z" + "\u0301" * 199,  # one letter under 199 combining accents: 200 code points
        "Zoe\u200d\u200b\ufeff",  # zero-width joiner, space, no-break space
        "\U0001f600 \u2028 line",  # astral emoji (a surrogate pair in JSON), line separator
    ]
    for name in names:
        registered = await api.client.post(
            "/api/v1/customers", json={"name": name, "email": f"u-{uuid.uuid4().hex}@x.io"}
        )
        assert registered.status_code == 201, (name, registered.text)
        customer = registered.json()["customer_id"]
        view = await api.get(
            f"/api/v1/customers/{customer}", registered.headers["consistency-token"]
        )
        assert view.json().get("name") == name.strip(), (name, view.headers, view.text)
    too_long = "Z" + "\u0301" * 200
    problem(
        await api.client.post("/api/v1/customers", json={"name": too_long, "email": "a@b.cd"}), 422
    )


# -- injection ------------------------------------------------------------------------

INJECTIONS = [
    "'; DROP TABLE orders; --",
    '"; DROP TABLE events; --',
    "robert'); DELETE FROM order_search WHERE ('1'='1",
    "' OR '1'='1",
    "' UNION SELECT * FROM events --",
    "%",
    "_",
    "%%",
    "a%",
    "*",
    "?",
    "[a-z]*",
    "\\",
    "\\\\'",
    "{x}",
    '"',
    "NEAR(london keyboard)",
    "london OR keyboard",
    "london AND NOT keyboard",
    "-london",
    "^london",
    "london*",
    "body:london",
    "terms:london",
    "london & !keyboard",
    "london | keyboard",
    "london:* <-> keyboard",
    "!!",
    "KEYS *",
    "FLUSHALL",
    "*\r\nFLUSHALL\r\n",
]


async def test_injection_attempts_change_no_result(api: Api) -> None:
    customer = await api.register("Robert Tables", email="bobby@tables.example")
    product = await api.add_product(name="London keyboard", sku="KEY-1")
    placed = await api.place(customer, [(product, 1)], city="London")
    token = placed.headers["consistency-token"]
    everything = await api.get("/api/v1/orders/search", token, params={"page_size": 100})
    assert everything.json()["total"] == 1

    from orders.projections.search_terms import search_terms

    sent = 0
    for text in INJECTIONS:
        answer = await api.get("/api/v1/orders/search", params={"q": text, "page_size": 100})
        sent += 1
        assert answer.status_code == 200, (text, answer.text)
        words = " ".join(search_terms(text))
        if words:  # the answer of the plain words the text holds
            plain = await api.get("/api/v1/orders/search", params={"q": words, "page_size": 100})
            assert answer.json() == plain.json(), text
        else:  # punctuation only: no word, no match
            assert answer.json()["items"] == [], text
        mine = await api.get(
            "/api/v1/orders/search",
            params={"q": text},
            headers=api.customer_auth(customer),
        )
        assert mine.status_code == 200, (text, mine.text)
    for text in INJECTIONS:
        for params in (
            {"sort_by": text},
            {"sort_order": text},
            {"status": text},
            {"sort_by": f"placed_at; {text}"},
            {"sort_by": "placed_at", "sort_order": f"asc, {text}"},
            {"placed_from": text},
            {"min_total": text},
            {"page": text},
        ):
            problem(await api.get("/api/v1/orders/search", params=params), 422)
            sent += 1
        problem(await api.get(f"/api/v1/customers/{customer}/orders", params={"status": text}), 422)
        problem(
            await api.get("/api/v1/reports/sales", params={"from": text, "to": "2024-01-01"}), 422
        )
        problem(await api.get(f"/api/v1/orders/{quote(text, safe='')}"), 422)
        problem(
            await api.get(
                "/api/v1/orders/search", headers={**api.staff, "Consistency-Token": text}
            ),
            422,
        )
        sent += 4
    # Idempotency keys are hashed, never used as keys as typed: globs are plain keys.
    for key in ("*", "?", "[a-z]", "orders:*", "%"):
        restocked = await api.client.post(
            f"/api/v1/products/{product}/restock",
            json={"quantity": 1},
            headers={**api.staff, "Idempotency-Key": key},
        )
        assert restocked.status_code == 200, (key, restocked.text)
        token = restocked.headers["consistency-token"]
    assert await available(api, product, token) == 99 + 5
    after = await api.get("/api/v1/orders/search", token, params={"page_size": 100})
    assert after.json() == everything.json()
    listed = await api.get(f"/api/v1/customers/{customer}/orders", token)
    assert [o["order_id"] for o in listed.json()["items"]] == [placed.json()["order_id"]]
    assert sent > 10 * len(INJECTIONS)


@pytest.mark.parametrize("path", ["/api/v1/orders/search", "/api/v1/projections"])
async def test_unknown_query_parameters_change_nothing(api: Api, path: str) -> None:
    plain = await api.get(path)
    odd = await api.get(path, params={"customer_id": str(uuid.uuid4()), "__proto__": "x"})
    assert odd.status_code == plain.status_code == 200
    if path.endswith("search"):
        assert odd.json() == plain.json()
