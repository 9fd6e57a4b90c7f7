"""cqrskit.fastapi end to end over HTTP, on a toy counter service (see counter_service.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from counter_service import Toy, build

from cqrskit import EventStoreClosed, Position

PROBLEM = "application/problem+json"
ALICE = {"X-User": "alice"}


@pytest.fixture
async def toy(tmp_path: Path) -> AsyncIterator[Toy]:
    toy = build(tmp_path)
    async with toy.app.router.lifespan_context(toy.app):
        yield toy


@pytest.fixture
async def client(toy: Toy) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=toy.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def create(client: httpx.AsyncClient, name: str = "c", **headers: str) -> httpx.Response:
    response = await client.post("/counters", json={"name": name}, headers={**ALICE, **headers})
    assert response.status_code == 201, response.text
    return response


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= set(body)
    return body


async def count_events(toy: Toy) -> int:
    return len(await toy.store.read_all())


async def test_command_answers_with_location_and_consistency_token(
    client: httpx.AsyncClient,
) -> None:
    response = await create(client)
    counter_id = response.json()["id"]
    assert response.headers["location"] == f"/counters/{counter_id}"
    assert response.headers["consistency-token"]
    assert "idempotent-replayed" not in response.headers
    step = await client.post(f"/counters/{counter_id}/increments", json={"by": 2}, headers=ALICE)
    assert step.status_code == 200
    assert step.headers["consistency-token"] != response.headers["consistency-token"]


async def test_idempotency_key_replays_the_first_answer_and_writes_nothing(
    client: httpx.AsyncClient, toy: Toy
) -> None:
    first = await create(client, "tea", **{"Idempotency-Key": "order-42"})
    written = await count_events(toy)
    again = await create(client, "tea", **{"Idempotency-Key": "order-42"})
    assert (again.status_code, again.json(), again.headers["location"]) == (
        first.status_code,
        first.json(),
        first.headers["location"],
    )
    assert again.headers["consistency-token"] == first.headers["consistency-token"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await count_events(toy) == written

    other_body = await client.post(
        "/counters", json={"name": "coffee"}, headers={**ALICE, "Idempotency-Key": "order-42"}
    )
    assert "already used for a different command" in problem(other_body, 422)["detail"]
    assert await count_events(toy) == written

    # Keys are scoped by user: bob's "order-42" is another command.
    bob = await client.post(
        "/counters",
        json={"name": "coffee"},
        headers={"X-User": "bob", "Idempotency-Key": "order-42"},
    )
    assert bob.status_code == 201
    assert bob.json() != first.json()


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
async def test_malformed_idempotency_key_is_422(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post(
        "/counters",
        json={"name": "c"},
        headers=[(b"X-User", b"alice"), (b"Idempotency-Key", key.encode("utf-8"))],
    )
    assert "header.Idempotency-Key" in problem(response, 422)["detail"]


async def test_validation_problem_names_the_field(client: httpx.AsyncClient) -> None:
    counter_id = (await create(client)).json()["id"]
    response = await client.post(
        f"/counters/{counter_id}/increments", json={"by": 0}, headers=ALICE
    )
    body = problem(response, 422)
    assert body["detail"] == "body.by: Input should be greater than 0"
    assert body["type"] == "/problems/validation-error"
    assert body["errors"][0]["loc"] == ["body", "by"]


async def test_not_found_conflict_and_domain_errors(client: httpx.AsyncClient) -> None:
    missing = problem(
        await client.post("/counters/nope/increments", json={"by": 1}, headers=ALICE), 404
    )
    assert missing["type"] == "/problems/aggregate-not-found"
    assert missing["detail"] == "Counter 'nope' does not exist"
    assert missing["instance"] == "/counters/nope/increments"
    assert problem(await client.get("/counters/nope"), 404)["detail"]
    assert problem(await client.post("/clash"), 409)["type"] == "/problems/concurrency-error"

    counter_id = (await create(client)).json()["id"]
    url = f"/counters/{counter_id}/increments"
    too_big = problem(await client.post(url, json={"by": 101}, headers=ALICE), 422)
    assert too_big["type"] == "/problems/step-too-large"  # the service's own mapping wins
    for _ in range(10):
        await client.post(url, json={"by": 100}, headers=ALICE)
    rule = problem(await client.post(url, json={"by": 1}, headers=ALICE), 409)
    assert rule["detail"] == f"counter {counter_id} would pass 1000"


async def test_http_errors_keep_status_and_headers(client: httpx.AsyncClient) -> None:
    unauthorized = await client.post("/counters", json={"name": "c"})
    assert problem(unauthorized, 401)["detail"] == "sign in first"
    assert unauthorized.headers["www-authenticate"] == "Bearer"
    assert problem(await client.get("/no/such/route"), 404)["type"] == "about:blank"
    not_allowed = await client.delete("/counters")
    assert problem(not_allowed, 405)["title"] == "Method Not Allowed"
    assert "POST" in not_allowed.headers["allow"]


async def test_broken_dependency_is_503_with_retry_after(client: httpx.AsyncClient) -> None:
    refused = await client.get("/down")
    body = problem(refused, 503)
    assert refused.headers["retry-after"] == "1"
    assert "10.0.0.5" not in refused.text
    assert body["type"] == "/problems/service-unavailable"
    closed = await client.post("/closed")
    problem(closed, 503)


async def test_unexpected_error_is_500_without_internals(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/boom")
    body = problem(response, 500)
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert body["detail"] == "The server failed to handle the request."
    [record] = [r for r in caplog.records if r.name == "cqrskit.fastapi"]
    assert record.exc_info is not None


async def test_queries_with_the_token_read_their_writes(client: httpx.AsyncClient) -> None:
    counter_id = (await create(client)).json()["id"]
    url = f"/counters/{counter_id}"
    for n in range(1, 51):
        step = await client.post(f"{url}/increments", json={"by": 1}, headers=ALICE)
        token = step.headers["consistency-token"]
        read = await client.get(url, headers={"Consistency-Token": token})
        assert read.status_code == 200, read.text
        assert "stale-read" not in read.headers
        assert read.json()["value"] == n


async def test_stale_read_after_the_timeout(client: httpx.AsyncClient) -> None:
    token = (await create(client)).headers["consistency-token"]
    response = await client.get("/frozen", headers={"Consistency-Token": token})
    assert response.status_code == 200
    assert response.headers["stale-read"] == "true"
    assert response.json() == {"stale": True}
    no_token = await client.get("/frozen")
    assert "stale-read" not in no_token.headers


AHEAD = {"Consistency-Token": str(Position(10**9, 1))}
"""The token of a write no projection has reached (nor will, in these tests)."""


async def test_a_stale_read_that_finds_nothing_says_stale_read(tmp_path: Path) -> None:
    """A 404 to a read whose wait timed out may just be "not there yet": it says so."""
    toy = build(tmp_path, consistency_timeout=0.05)
    async with toy.app.router.lifespan_context(toy.app):
        transport = httpx.ASGITransport(app=toy.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            stale = await client.get("/counters/nope", headers=AHEAD)
            fresh = await client.get("/counters/nope")
    body = problem(stale, 404)
    assert stale.headers["stale-read"] == "true"
    assert body["type"] == "/problems/aggregate-not-found"
    assert body["detail"].startswith("Counter 'nope' does not exist (")
    assert "Consistency-Token" in body["detail"]
    assert "stale-read" not in fresh.headers
    assert problem(fresh, 404)["detail"] == "Counter 'nope' does not exist"


@pytest.mark.parametrize(
    ("status", "stale"),
    [(404, True), (409, True), (401, False), (403, False), (422, False), (503, False)],
)
async def test_stale_read_on_problems_about_the_read_model_only(
    client: httpx.AsyncClient, status: int, stale: bool
) -> None:
    """Answers about what the read model holds say Stale-Read; refusals of the request
    itself (401, 403, 422) and failures that read nothing (5xx) do not."""
    response = await client.get(f"/frozen/{status}", headers=AHEAD)
    body = problem(response, status)
    assert ("stale-read" in response.headers) is stale
    assert ("Consistency-Token" in body["detail"]) is stale
    if stale:
        assert response.headers["stale-read"] == "true"
    unmarked = await client.get(f"/frozen/{status}")
    assert "stale-read" not in unmarked.headers


async def test_malformed_consistency_token_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/frozen", headers={"Consistency-Token": "yesterday"})
    assert "header.Consistency-Token" in problem(response, 422)["detail"]


async def test_etag_and_if_match(client: httpx.AsyncClient) -> None:
    created = await create(client)
    url = f"/counters/{created.json()['id']}"
    read = await client.get(
        url, headers={"Consistency-Token": created.headers["consistency-token"]}
    )
    assert read.headers["etag"] == '"1"'
    ok = await client.post(
        f"{url}/increments", json={"by": 1}, headers={**ALICE, "If-Match": read.headers["etag"]}
    )
    assert ok.status_code == 200
    stale = await client.post(
        f"{url}/increments", json={"by": 1}, headers={**ALICE, "If-Match": read.headers["etag"]}
    )
    body = problem(stale, 412)
    assert "at version 2, not at the expected version 1" in body["detail"]
    anything = await client.post(
        f"{url}/increments", json={"by": 1}, headers={**ALICE, "If-Match": "*"}
    )
    assert anything.status_code == 200
    garbage = await client.post(
        f"{url}/increments", json={"by": 1}, headers={**ALICE, "If-Match": "3"}
    )
    assert "header.If-Match" in problem(garbage, 422)["detail"]


async def test_metrics_show_http_and_projection_metrics(client: httpx.AsyncClient) -> None:
    counter_id = (await create(client)).json()["id"]
    await client.get(f"/counters/{counter_id}")
    await client.get("/no/such/route")
    text = (await client.get("/metrics")).text
    assert 'cqrskit_http_requests_total{method="POST",route="/counters",status="201"} 1.0' in text
    assert 'route="/counters/{counter_id}"' in text
    assert counter_id not in text
    assert 'route="<unmatched>",status="404"' in text
    assert "cqrskit_http_request_duration_seconds_bucket" in text
    assert "cqrskit_projection_events_processed_total" in text


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).json() == {"status": "ready"}


async def test_openapi_documents_bodies_headers_and_problems(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    create_op = spec["paths"]["/counters"]["post"]
    assert "Consistency-Token" in create_op["responses"]["201"]["headers"]
    assert create_op["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Created"
    }
    assert "application/problem+json" in create_op["responses"]["409"]["content"]
    read_op = spec["paths"]["/counters/{counter_id}"]["get"]
    assert "Stale-Read" in read_op["responses"]["200"]["headers"]
    assert any(p["name"] == "Consistency-Token" for p in read_op["parameters"])


async def test_services_are_closed_on_shutdown(tmp_path: Path) -> None:
    toy = build(tmp_path)
    async with toy.app.router.lifespan_context(toy.app):
        assert toy.services
        assert hasattr(toy.app.state, "cqrs_services")
    assert not hasattr(toy.app.state, "cqrs_services")
    with pytest.raises(EventStoreClosed):
        await toy.store.head()


def test_without_fastapi_the_import_names_the_extra() -> None:
    script = "import sys; sys.modules['fastapi'] = None; import cqrskit.fastapi"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode != 0
    assert 'pip install "cqrskit[fastapi]"' in run.stderr
