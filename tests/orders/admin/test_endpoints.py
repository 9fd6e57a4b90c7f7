"""The admin page's JSON endpoints over HTTP, in process, on both configurations."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from e2e.test_api import problem
from ops.conftest import code_version

from cqrskit import START
from cqrskit.store.base import RecordedEvent
from orders import operations

from .conftest import ADMIN, Api, ReadDatabase, admin_json, wait_for

T = TypeVar("T")

PROJECTIONS = {"order_details", "order_search", "sales_report", "catalog", "customers"}

ENDPOINTS = [
    ("GET", "/projections", None),
    ("GET", "/projections/customers/parked", None),
    ("POST", "/projections/customers/parked/1/retry", None),
    ("POST", "/projections/customers/parked/1/discard", {"reason": "test"}),
    ("GET", "/streams/Order-x", None),
    ("GET", "/events", None),
]


async def _settled(latest: Callable[[], Awaitable[T]], api: Api) -> tuple[list[RecordedEvent], T]:
    """``latest()`` with every readable event, read before and after it alike.

    On PostgreSQL an event becomes readable only once every older transaction ended, and
    other sessions share the server: the two full reads bracket a ``latest()`` that saw
    the same events."""
    store = api.services.event_store
    while True:
        before = await store.read_all(START, 1000)
        answer = await latest()
        if await store.read_all(START, 1000) == before:
            return before, answer


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_staff_only(api: Api, method: str, path: str, body: Any) -> None:
    anonymous = await api.client.request(method, ADMIN + path, json=body)
    assert problem(anonymous, 401)
    assert anonymous.headers["www-authenticate"] == "Bearer"
    spoiled = await api.client.request(
        method, ADMIN + path, json=body, headers=api.auth("not-a-token")
    )
    assert problem(spoiled, 401)
    customer = api.customer_auth(str(uuid.uuid4()))
    assert problem(await api.client.request(method, ADMIN + path, json=body, headers=customer), 403)


async def test_the_page_loads_without_a_token_and_runs_only_its_own_files(api: Api) -> None:
    page = await api.client.get("/admin")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<h2>Projections</h2>" in page.text
    for asset, media_type in [("admin.js", "text/javascript"), ("admin.css", "text/css")]:
        answer = await api.client.get(f"/admin/static/{asset}")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith(media_type)
        assert f"/admin/static/{asset}" in page.text
    assert "sessionStorage" in (await api.client.get("/admin/static/admin.js")).text
    assert problem(await api.client.get("/admin/static/..%2Fendpoints.py"), 404)
    assert problem(await api.client.get("/admin/static/admin.html"), 404)
    document = (await api.client.get("/openapi.json")).json()
    assert "/admin" not in document["paths"]
    assert f"{ADMIN}/projections" in document["paths"]


async def test_projections_are_listed_live_with_their_runner(api: Api) -> None:
    await api.register()

    async def all_live() -> list[dict[str, Any]] | None:
        listed: list[dict[str, Any]] = await admin_json(api, "/projections")
        live = all(p["state"] == "live" and p["events_behind"] == 0 for p in listed)
        return listed if live else None

    listed = await wait_for(all_live, "every projection live and caught up")
    assert {p["name"] for p in listed} == PROJECTIONS
    for projection in listed:
        assert projection["version"] == code_version(projection["name"])
        assert projection["parked"] == 0
        assert projection["checkpoint"] not in (None, "0")
        assert projection["holder"]  # this process, host:pid
        assert projection["stale"] is False
        assert projection["faulted"] is False
        assert projection["rebuild"] is None or projection["rebuild"]["finished"]


async def test_parked_events_are_retried_and_discarded_from_an_api_only_process(
    api: Api, api_only: Api, read_db: ReadDatabase
) -> None:
    await read_db.refuse_customers()
    first = await api.register(email=f"reject-{uuid.uuid4().hex[:8]}@example.com")
    second = await api.register(email=f"reject-{uuid.uuid4().hex[:8]}@example.com")

    async def two_parked() -> list[dict[str, Any]] | None:
        parked: list[dict[str, Any]] = await admin_json(api_only, "/projections/customers/parked")
        return parked if len(parked) == 2 else None

    parked = await wait_for(two_parked, "two parked registrations")
    assert [p["stream_id"] for p in parked] == [f"Customer-{first}", f"Customer-{second}"]
    for entry in parked:
        assert entry["projection"] == "customers"
        assert entry["event_type"] == "CustomerRegistered"
        assert "refused by ops_reject" in entry["error"]
        assert entry["attempts"] >= 1
        assert entry["stream_version"] == 1
        assert entry["undecodable"] is False
    listed = {p["name"]: p for p in await admin_json(api_only, "/projections")}
    assert listed["customers"]["parked"] == 2
    assert listed["order_details"]["parked"] == 0

    retry = f"{ADMIN}/projections/customers/parked/{parked[0]['id']}/retry"
    again = problem(await api_only.client.post(retry, headers=api.staff), 409)
    assert "stays parked" in str(again["detail"])
    assert "refused by ops_reject" in str(again["detail"])
    still = await admin_json(api_only, "/projections/customers/parked")
    assert len(still) == 2
    assert still[0]["attempts"] > parked[0]["attempts"]

    await read_db.accept_customers()
    retried = await api_only.client.post(retry, headers=api.staff)
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == parked[0]["id"]
    assert (await api.get(f"/api/v1/customers/{first}")).status_code == 200

    discard = f"{ADMIN}/projections/customers/parked/{parked[1]['id']}/discard"
    problem(await api_only.client.post(discard, json={"reason": "  "}, headers=api.staff), 422)
    problem(await api_only.client.post(discard, json={}, headers=api.staff), 422)
    discarded = await api_only.client.post(
        discard, json={"reason": "a test sign-up"}, headers=api.staff
    )
    assert discarded.status_code == 200, discarded.text
    assert discarded.json()["stream_id"] == f"Customer-{second}"

    assert await admin_json(api_only, "/projections/customers/parked") == []
    listed = {p["name"]: p for p in await admin_json(api, "/projections")}
    assert listed["customers"]["parked"] == 0
    assert (await api.get(f"/api/v1/customers/{second}")).status_code == 404


async def test_unknown_projections_and_parked_ids_are_404(api: Api) -> None:
    says = problem(await api.get(f"{ADMIN}/projections/nope/parked"), 404)
    assert "no projection 'nope'" in str(says["detail"])
    for action, body in [("retry", None), ("discard", {"reason": "x"})]:
        path = f"{ADMIN}/projections/customers/parked/12345/{action}"
        says = problem(await api.client.post(path, json=body, headers=api.staff), 404)
        assert "no parked event '12345'" in str(says["detail"])
        path = f"{ADMIN}/projections/nope/parked/1/{action}"
        problem(await api.client.post(path, json=body, headers=api.staff), 404)


async def test_a_stream_shows_every_event_with_its_lineage(api: Api) -> None:
    customer = await api.register()
    product = await api.add_product(price="5.00")
    placed = await api.place(customer, [(product, 2)])
    order = placed.json()["order_id"]
    shipped = await api.client.post(
        f"/api/v1/orders/{order}/ship", json={"tracking_number": "T-1"}, headers=api.staff
    )
    assert shipped.status_code == 200, shipped.text

    events = await admin_json(api, f"/streams/Order-{order}")

    assert [(e["version"], e["type"]) for e in events] == [(1, "OrderPlaced"), (2, "OrderShipped")]
    placed_event, shipped_event = events
    assert placed_event["stream_id"] == f"Order-{order}"
    assert placed_event["payload"]["order_id"] == order
    assert placed_event["payload"]["total"] == "10.00"
    assert shipped_event["payload"]["tracking_number"] == "T-1"
    assert shipped_event["user_id"] == "staff"
    for event in events:
        lineage = ("position", "recorded_at", "message_id", "correlation_id", "causation_id")
        assert all(event[field] for field in lineage), event
        assert event["undecodable"] is None

    says = problem(await api.get(f"{ADMIN}/streams/Order-nope"), 404)
    assert "no stream 'Order-nope'" in str(says["detail"])
    problem(await api.get(f"{ADMIN}/streams/bad%00id"), 422)
    problem(await api.get(f"{ADMIN}/streams/" + "x" * 1001), 422)


async def test_the_tail_is_the_latest_events_oldest_first(api: Api) -> None:
    customer = await api.register()
    product = await api.add_product()
    for _ in range(3):
        assert (await api.place(customer, [(product, 1)])).status_code == 201

    everything, tail = await _settled(lambda: admin_json(api, "/events", params={"limit": 3}), api)

    assert {e["type"] for e in tail} <= {"OrderPlaced", "StockReserved"}
    assert [e["position"] for e in tail] == [str(e.position) for e in everything[-3:]]
    assert len(await admin_json(api, "/events")) == len(everything)  # fewer than 25
    problem(await api.get(f"{ADMIN}/events", params={"limit": 0}), 422)
    problem(await api.get(f"{ADMIN}/events", params={"limit": 10_000}), 422)


async def test_latest_events_agree_with_reading_everything(api: Api) -> None:
    assert await operations.latest_events(api.services, 5) == []
    customer = await api.register()
    product = await api.add_product()
    for _ in range(30):
        assert (await api.place(customer, [(product, 1)])).status_code == 201
    for count in (1, 2, 7, 25, 90, 200):
        everything, latest = await _settled(
            functools.partial(operations.latest_events, api.services, count), api
        )
        assert [e.position for e in latest] == [e.position for e in everything[-count:]], count
    with pytest.raises(operations.OperationError):
        await operations.latest_events(api.services, 0)
