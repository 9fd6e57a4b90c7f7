"""The library over HTTP, lifespan included, on the embedded default (SQLite files) and
on PostgreSQL + Redis (each test in fresh schemas and under a fresh key prefix)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from library.api import create_app
from library.settings import Settings

PROBLEM = "application/problem+json"
EMMA = "978-0-14-143951-8"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "data")
    server: str = request.getfixturevalue("postgres_url")
    redis_url: str = request.getfixturevalue("redis_url")
    return Settings(
        data_dir=tmp_path / "data",
        event_store_url=f"{server}?schema={request.getfixturevalue('pg_schema')}",
        read_db_url=f"{server}?schema={request.getfixturevalue('pg_read_schema')}",
        redis_url=f"{redis_url}?prefix={request.getfixturevalue('redis_prefix')}",
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as c:
            yield c


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers.get("stale-read") is None
    return response.json()


def problem(response: httpx.Response, status: int, type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["type"] == type, body
    return body


async def shelf(client: httpx.AsyncClient, copies: int = 1) -> tuple[str, list[str]]:
    """A member and ``copies`` copies of Emma; their ids."""
    joined = await client.post("/members", json={"name": "Ada", "email": "ada@example.com"})
    member = ok(joined, 201)["id"]
    ok(await client.post("/titles", json={"isbn": EMMA, "name": "Emma", "author": "Austen"}), 201)
    barcodes = [f"E-{n}" for n in range(1, copies + 1)]
    for barcode in barcodes:
        added = await client.post("/titles/9780141439518/copies", json={"barcode": barcode})
        ok(added, 201)
    return member, barcodes


async def test_a_member_borrows_renews_and_returns_a_copy(client: httpx.AsyncClient) -> None:
    member, [copy] = await shelf(client)
    lent = await client.post("/loans", json={"copy_id": copy, "member_id": member})
    loan_id = ok(lent, 201)["id"]
    assert lent.headers["location"] == f"/loans/{loan_id}"

    # Read your own write: the token makes the query wait for the read model.
    token = {"Consistency-Token": lent.headers["consistency-token"]}
    got = await client.get(f"/loans/{loan_id}", headers=token)
    loan = ok(got)
    assert (loan["copy_id"], loan["renewals"], loan["returned_on"]) == (copy, 0, None)
    assert got.headers["etag"] == f'"{loan["version"]}"'
    title = ok(await client.get("/titles/9780141439518", headers=token))
    assert (title["copies"], title["available"]) == (1, 0)
    assert ok(await client.get(f"/members/{member}", headers=token))["open_loans"] == 1

    renewed = await client.post(
        f"/loans/{loan_id}/renew", headers={"If-Match": got.headers["etag"]}
    )
    assert ok(renewed)["id"] == loan_id
    stale = await client.post(f"/loans/{loan_id}/renew", headers={"If-Match": got.headers["etag"]})
    problem(stale, 412, "/problems/unexpected-version")

    returned = await client.post(f"/copies/{copy}/return")
    assert ok(returned)["id"] == loan_id
    token = {"Consistency-Token": returned.headers["consistency-token"]}
    loans = ok(await client.get(f"/members/{member}/loans", headers=token))
    assert [(x["loan_id"], x["renewals"], x["days_late"]) for x in loans] == [(loan_id, 1, 0)]
    assert loans[0]["returned_on"] is not None
    assert ok(await client.get("/titles/9780141439518", headers=token))["available"] == 1


async def test_an_idempotency_key_replays_the_first_answer(client: httpx.AsyncClient) -> None:
    body = {"name": "Bob", "email": "bob@example.com"}
    key = {"Idempotency-Key": "join-bob-1"}
    first = await client.post("/members", json=body, headers=key)
    again = await client.post("/members", json=body, headers=key)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["consistency-token"] == first.headers["consistency-token"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post("/members", json={**body, "name": "Rob"}, headers=key)
    problem(other, 422, "/problems/idempotency-key-reused")


async def test_rules_answer_with_problems(client: httpx.AsyncClient) -> None:
    member, copies = await shelf(client, copies=4)
    for copy in copies[:3]:
        ok(await client.post("/loans", json={"copy_id": copy, "member_id": member}), 201)
    taken = await client.post("/loans", json={"copy_id": copies[0], "member_id": member})
    assert "on loan" in problem(taken, 409, "/problems/copy-unavailable")["detail"]
    limit = await client.post("/loans", json={"copy_id": copies[3], "member_id": member})
    problem(limit, 403, "/problems/loan-limit-reached")
    unknown = await client.post("/loans", json={"copy_id": "X-404", "member_id": member})
    problem(unknown, 404, "/problems/aggregate-not-found")
    again = await client.post("/titles", json={"isbn": EMMA, "name": "Emma", "author": "Austen"})
    problem(again, 409, "/problems/already-exists")
    bad = await client.post("/titles", json={"isbn": "12", "name": "Emma", "author": "Austen"})
    assert "ISBN" in problem(bad, 422, "/problems/validation-error")["detail"]
    problem(await client.get("/members/nobody"), 404, "about:blank")
    token = await client.get("/reports/overdue?on=2026-01-01", headers={"Consistency-Token": "x"})
    problem(token, 422, "/problems/validation-error")


async def test_the_overdue_report_lists_open_loans_past_due(client: httpx.AsyncClient) -> None:
    member, [copy] = await shelf(client)
    lent = await client.post("/loans", json={"copy_id": copy, "member_id": member})
    token = {"Consistency-Token": lent.headers["consistency-token"]}
    due_on = date.fromisoformat(
        ok(await client.get(lent.headers["location"], headers=token))["due_on"]
    )
    on_time = ok(await client.get(f"/reports/overdue?on={due_on}", headers=token))
    assert on_time["loans"] == []
    later = due_on + timedelta(days=9)
    report = ok(await client.get(f"/reports/overdue?on={later}", headers=token))
    assert [(x["member_name"], x["copy_id"], x["days_overdue"]) for x in report["loans"]] == [
        ("Ada", copy, 9)
    ]


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert ok(await client.get("/health")) == {"status": "ok"}
    # Ready once every projection is live, which may take a moment after startup.
    for _ in range(100):
        ready = await client.get("/ready")
        if ready.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert ok(ready) == {"status": "ready"}
    await client.get("/members/nobody")
    metrics = await client.get("/metrics")
    assert 'route="/members/{member_id}"' in metrics.text
    assert "cqrskit_projection_lag_events" in metrics.text
