"""Every route's success path and every error status, over HTTP, on both configurations."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

from cqrskit import Position, Repository
from orders.domain.product import Product

from .conftest import Api

PROBLEM = "application/problem+json"


def problem(response: object, status: int) -> dict[str, object]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == status, body
    assert body["title"], body
    assert body["detail"], body
    return dict(body)


async def test_a_customer_places_extends_and_reads_an_order(api: Api) -> None:
    customer = await api.register("Grace Hopper")
    keyboard = await api.add_product("89.90", 10, "Mechanical keyboard")
    mouse = await api.add_product("24.50", 10, "Wireless mouse")
    me = api.customer_auth(customer)

    placed = await api.place(customer, [(keyboard, 2)], headers=me)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    assert placed.headers["location"] == f"/api/v1/orders/{order_id}"
    token = placed.headers["consistency-token"]

    got = await api.get(f"/api/v1/orders/{order_id}", token, headers=me)
    assert got.status_code == 200, got.text
    assert got.headers.get("stale-read") is None
    order = got.json()
    assert order["customer_name"] == "Grace Hopper"
    assert order["status"] == "placed"
    assert order["total_amount"] == "179.80"
    assert order["lines"][0]["name"] == "Mechanical keyboard"
    assert order["lines"][0]["unit_price"] == "89.90"
    assert got.headers["etag"] == f'"{order["version"]}"'

    added = await api.client.post(
        f"/api/v1/orders/{order_id}/items",
        json={"product_id": mouse, "quantity": 1},
        headers={**me, "If-Match": got.headers["etag"]},
    )
    assert added.status_code == 200, added.text
    again = await api.get(f"/api/v1/orders/{order_id}", added.headers["consistency-token"])
    assert again.json()["total_amount"] == "204.30"
    assert again.json()["item_count"] == 3

    shipped = await api.client.post(
        f"/api/v1/orders/{order_id}/ship", json={"tracking_number": "TRK1"}, headers=api.staff
    )
    assert shipped.status_code == 200, shipped.text
    view = (
        await api.get(f"/api/v1/orders/{order_id}", shipped.headers["consistency-token"])
    ).json()
    assert (view["status"], view["tracking_number"]) == ("shipped", "TRK1")

    mine = await api.get(
        f"/api/v1/customers/{customer}/orders", shipped.headers["consistency-token"], headers=me
    )
    assert mine.status_code == 200, mine.text
    assert [o["order_id"] for o in mine.json()["items"]] == [order_id]
    assert mine.json()["total"] == 1
    assert mine.json()["total_pages"] == 1

    profile = await api.get(f"/api/v1/customers/{customer}", token, headers=me)
    assert profile.status_code == 200
    assert profile.json()["name"] == "Grace Hopper"


async def test_catalog_commands_and_product_view(api: Api) -> None:
    product = await api.add_product("10.00", 5)
    restocked = await api.client.post(
        f"/api/v1/products/{product}/restock", json={"quantity": 7}, headers=api.staff
    )
    assert restocked.status_code == 200, restocked.text
    priced = await api.client.post(
        f"/api/v1/products/{product}/price", json={"price": "12.50"}, headers=api.staff
    )
    assert priced.status_code == 200, priced.text
    view = await api.get(f"/api/v1/products/{product}", priced.headers["consistency-token"])
    assert view.status_code == 200, view.text
    assert view.json()["available_stock"] == 12
    assert view.json()["price"] == "12.50"
    assert view.headers["etag"] == f'"{view.json()["version"]}"'


async def test_cancel_releases_stock_and_report_and_search_see_it(api: Api) -> None:
    customer = await api.register("Alan Turing")
    product = await api.add_product("5.00", 4, "Enigma rotor")
    placed = await api.place(customer, [(product, 3)], city="Bletchley")
    order_id = placed.json()["order_id"]
    cancelled = await api.client.post(
        f"/api/v1/orders/{order_id}/cancel",
        json={"reason": "duplicate"},
        headers=api.customer_auth(customer),
    )
    assert cancelled.status_code == 200, cancelled.text
    token = cancelled.headers["consistency-token"]
    stock = await api.get(f"/api/v1/products/{product}", token)
    assert stock.json()["available_stock"] == 4
    found = await api.get("/api/v1/orders/search", token, params={"q": "bletchley enigma"})
    assert found.status_code == 200, found.text
    assert [h["order_id"] for h in found.json()["items"]] == [order_id]
    assert found.json()["items"][0]["status"] == "cancelled"
    report = await api.get(
        "/api/v1/reports/sales", token, params={"from": "2000-01-01", "to": "2000-12-31"}
    )
    assert report.status_code == 200, report.text
    assert report.json()["days"] == []
    today = (await api.get(f"/api/v1/orders/{order_id}", token)).json()["placed_at"][:10]
    report = await api.get("/api/v1/reports/sales", token, params={"from": today, "to": today})
    [day] = report.json()["days"]
    assert day["orders_placed"] >= 1
    assert day["orders_cancelled"] >= 1
    assert Decimal(day["gross_revenue"]) >= Decimal("15.00")


async def test_operations_routes(api: Api) -> None:
    assert (await api.client.get("/health")).status_code == 200
    for _ in range(100):
        ready = await api.client.get("/ready")
        if ready.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert ready.status_code == 200, ready.text
    statuses = await api.get("/api/v1/projections")
    assert statuses.status_code == 200, statuses.text
    assert {p["name"] for p in statuses.json()} == {
        "order_details",
        "order_search",
        "sales_report",
        "catalog",
        "customers",
    }
    await api.register()
    metrics = await api.client.get("/metrics")
    assert metrics.status_code == 200
    assert "cqrskit_projection" in metrics.text
    assert "http_requests" in metrics.text
    openapi = (await api.client.get("/openapi.json")).json()
    for path in (
        "/api/v1/customers",
        "/api/v1/customers/{customer_id}",
        "/api/v1/customers/{customer_id}/orders",
        "/api/v1/products",
        "/api/v1/products/{product_id}",
        "/api/v1/products/{product_id}/restock",
        "/api/v1/products/{product_id}/price",
        "/api/v1/orders",
        "/api/v1/orders/search",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/{order_id}/items",
        "/api/v1/orders/{order_id}/ship",
        "/api/v1/orders/{order_id}/cancel",
        "/api/v1/reports/sales",
        "/api/v1/projections",
    ):
        assert path in openapi["paths"], path
    # The orders are routed first (the busiest routes), yet documented in reading order.
    tags = [tag["name"] for tag in openapi["tags"]]
    assert tags == ["customers", "products", "orders", "reports", "operations", "admin"]
    used = {t for item in openapi["paths"].values() for op in item.values() for t in op["tags"]}
    assert used <= set(tags)


async def test_error_statuses(api: Api) -> None:
    customer = await api.register("Carol", email="carol@example.com")
    problem(
        await api.client.post(
            "/api/v1/customers", json={"name": "Carol 2", "email": " CAROL@example.com"}
        ),
        409,
    )
    await api.add_product(sku="DUP-1")
    problem(
        await api.client.post(
            "/api/v1/products",
            json={"sku": "dup-1", "name": "again", "price": "1.00", "stock": 1},
            headers=api.staff,
        ),
        409,
    )
    scarce = await api.add_product("3.00", 2, "Scarce thing")
    short = problem(await api.place(customer, [(scarce, 3)]), 409)
    assert scarce in str(short["detail"])
    problem(await api.get(f"/api/v1/orders/{uuid.uuid4()}"), 404)
    problem(await api.get(f"/api/v1/products/{uuid.uuid4()}"), 404)
    problem(await api.place(customer, [(str(uuid.uuid4()), 1)]), 404)
    unknown = await api.client.post(
        f"/api/v1/orders/{uuid.uuid4()}/ship", json={"tracking_number": "T"}, headers=api.staff
    )
    problem(unknown, 404)

    order_id = (await api.place(customer, [(scarce, 1)])).json()["order_id"]
    stale = await api.client.post(
        f"/api/v1/orders/{order_id}/ship",
        json={"tracking_number": "T1"},
        headers={**api.staff, "If-Match": '"7"'},
    )
    problem(stale, 412)
    await api.client.post(
        f"/api/v1/orders/{order_id}/cancel", json={"reason": "no"}, headers=api.staff
    )
    problem(
        await api.client.post(
            f"/api/v1/orders/{order_id}/ship", json={"tracking_number": "T1"}, headers=api.staff
        ),
        409,
    )

    invalid = problem(await api.place(customer, [(scarce, 0)]), 422)
    assert "quantity" in str(invalid["detail"])
    invalid = problem(await api.client.post("/api/v1/customers", json={"name": "No mail"}), 422)
    assert "email" in str(invalid["detail"])
    problem(await api.place(customer, []), 422)
    problem(await api.get(f"/api/v1/customers/{customer}/orders", params={"page_size": 101}), 422)
    problem(await api.get("/api/v1/orders/not-a-uuid"), 422)
    problem(await api.get("/api/v1/orders/search", params={"sort_by": "customer_email"}), 422)
    problem(
        await api.client.post(
            "/api/v1/products",
            json={"sku": "F-1", "name": "float", "price": "1.001", "stock": 1},
            headers=api.staff,
        ),
        422,
    )


async def test_idempotency_key_replays_the_first_answer(api: Api) -> None:
    customer = await api.register()
    product = await api.add_product(stock=10)
    key = {"Idempotency-Key": f"place-{uuid.uuid4()}"}
    me = api.customer_auth(customer)
    first = await api.place(customer, [(product, 2)], headers={**me, **key})
    second = await api.place(customer, [(product, 2)], headers={**me, **key})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert first.headers["location"] == second.headers["location"]
    view = await api.get(f"/api/v1/products/{product}", second.headers["consistency-token"])
    assert view.json()["available_stock"] == 8  # reserved once
    other_body = await api.place(customer, [(product, 3)], headers={**me, **key})
    problem(other_body, 422)
    # The same key from another caller is another command.
    staff_first = await api.place(customer, [(product, 1)], headers={**api.staff, **key})
    assert staff_first.status_code == 201
    assert staff_first.json() != first.json()


async def test_read_your_writes_a_hundred_times(api: Api) -> None:
    customer = await api.register("Reader")
    product = await api.add_product(stock=1000, name="Widget")
    me = api.customer_auth(customer)
    for n in range(100):
        placed = await api.place(customer, [(product, 1)], headers=me, city=f"City{n}")
        assert placed.status_code == 201, placed.text
        order_id, token = placed.json()["order_id"], placed.headers["consistency-token"]
        got = await api.get(f"/api/v1/orders/{order_id}", token, headers=me)
        assert got.status_code == 200, (n, got.text)
        assert "stale-read" not in got.headers, n
        listed = await api.get(
            f"/api/v1/customers/{customer}/orders", token, headers=me, params={"page_size": 1}
        )
        assert listed.status_code == 200
        assert "stale-read" not in listed.headers
        assert listed.json()["items"][0]["order_id"] == order_id
        assert listed.json()["total"] == n + 1
        found = await api.get("/api/v1/orders/search", token, headers=me, params={"q": f"City{n}"})
        assert found.status_code == 200
        assert "stale-read" not in found.headers
        assert [h["order_id"] for h in found.json()["items"]] == [order_id]


async def test_a_read_that_finds_nothing_before_the_projection_says_stale_read(
    api: Api,
) -> None:
    """An order not projected yet, read through its token: the 404 says Stale-Read (it may
    be "not there yet", not "does not exist"), for its owner and a stranger alike."""
    customer = await api.register("Early Reader")
    product = await api.add_product(stock=10)
    me, stranger = api.customer_auth(customer), api.customer_auth(await api.register("Other"))
    runner = api.services.runner
    assert runner is not None
    await runner.stop()
    try:
        placed = await api.place(customer, [(product, 1)], headers=me)
        assert placed.status_code == 201, placed.text
        order_id, token = placed.json()["order_id"], placed.headers["consistency-token"]
        mine = await api.get(f"/api/v1/orders/{order_id}", token, headers=me)
        theirs = await api.get(f"/api/v1/orders/{order_id}", token, headers=stranger)
    finally:
        await runner.start()
    body = problem(mine, 404)
    assert mine.headers["stale-read"] == "true"
    assert body["detail"].startswith(f"order {order_id} does not exist (")
    assert "Consistency-Token" in str(body["detail"])
    assert (theirs.status_code, theirs.headers.get("stale-read"), theirs.json()) == (
        404,
        "true",
        body,
    )
    got = await api.get(f"/api/v1/orders/{order_id}", token, headers=me)
    assert got.status_code == 200, got.text
    assert "stale-read" not in got.headers


async def test_twenty_orders_for_ten_in_stock(api: Api) -> None:
    product = await api.add_product("1.00", 10, "Last ten")
    customers = [await api.register(f"Buyer {n}") for n in range(20)]
    answers = await asyncio.gather(*(api.place(c, [(product, 1)]) for c in customers))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 10 + [409] * 10, [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 409):
        assert "insufficient stock" in refused.json()["detail"]
        assert product in refused.json()["detail"]
    loaded = await Repository(api.services.event_store).load(Product, product)
    assert loaded.available == 0
    last = max(
        (a.headers["consistency-token"] for a in answers if a.status_code == 201),
        key=Position.parse,
    )
    view = await api.get(f"/api/v1/products/{product}", last)
    assert view.json()["available_stock"] == 0


async def test_a_broken_dependency_is_503_not_500(api: Api) -> None:
    product = await api.add_product()
    # The event store goes away behind the service's back (as when its database is down).
    await api.services.event_store.close()
    response = await api.client.post(
        f"/api/v1/products/{product}/restock", json={"quantity": 1}, headers=api.staff
    )
    body = problem(response, 503)
    assert response.headers["retry-after"]
    assert "Traceback" not in response.text
    assert body["type"] == "/problems/service-unavailable"


async def test_search_totals_are_exact_and_say_so(api: Api) -> None:
    customer = await api.register("Edsger Dijkstra")
    pen = await api.add_product("2.00", 100, "Goto pen")
    ids = []
    for _ in range(3):
        placed = await api.place(customer, [(pen, 1)], city="Eindhoven")
        assert placed.status_code == 201, placed.text
        ids.append(placed.json()["order_id"])
    shipped = await api.client.post(
        f"/api/v1/orders/{ids[0]}/ship", json={"tracking_number": "T-1"}, headers=api.staff
    )
    assert shipped.status_code == 200, shipped.text
    token = shipped.headers["consistency-token"]
    for params, total in (
        ({}, 3),  # every order: the kept count
        ({"status": "placed"}, 2),  # one status: the kept count
        ({"status": "shipped", "page_size": 1}, 1),
        ({"q": "eindhoven goto", "page_size": 2}, 3),  # counted
    ):
        found = await api.get("/api/v1/orders/search", token, params=params)
        assert found.status_code == 200, found.text
        body = found.json()
        assert (body["total"], body["total_is_exact"]) == (total, True), (params, body)
        assert body["total_pages"] == -(-total // body["page_size"])
    # A customer's own search counts their orders.
    mine = await api.get(
        "/api/v1/orders/search", token, headers=api.customer_auth(customer), params={}
    )
    assert (mine.json()["total"], mine.json()["total_is_exact"]) == (3, True)
    schema = (await api.client.get("/openapi.json")).json()["components"]["schemas"]
    page = schema["Page_OrderSearchHit_"]["properties"]
    assert "at least" in page["total"]["description"]
    assert page["total_is_exact"]["type"] == "boolean"
