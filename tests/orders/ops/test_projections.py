"""``orders projections ...`` beside a running service."""

from __future__ import annotations

import json
import threading
import uuid

import httpx
import pytest

from ops.conftest import Service, code_version, wait_until

pytestmark = pytest.mark.slow

PROJECTIONS = {"order_details", "order_search", "sales_report", "catalog", "customers"}


def caught_up(service: Service) -> list[dict[str, object]] | None:
    statuses: list[dict[str, object]] = service.cli_json("projections", "status")
    live = all(s["events_behind"] == 0 and s["state"] == "live" for s in statuses)
    return statuses if live else None


def test_status_shows_every_projection_caught_up(service: Service) -> None:
    customer = service.register()
    service.place(customer, service.add_product())

    statuses = wait_until(lambda: caught_up(service), "every projection to catch up")

    assert {s["name"] for s in statuses} == PROJECTIONS
    for status in statuses:
        assert status["version"] == code_version(str(status["name"]))
        assert status["seconds_behind"] == 0
        assert status["parked"] == 0
        assert not status["faulted"]
        assert not status["stale"]
        assert status["holder"]  # the serve process, host:pid
        assert status["checkpoint"] not in (None, "0")
    table = service.cli("projections", "status", COLUMNS="200")
    assert table.returncode == 0, table.stderr
    for name in PROJECTIONS:
        assert name in table.stdout


# Makes the read database refuse some customers, the way a constraint added by hand, a
# full disk or a revoked grant would: the event is fine, its projection cannot be written.
REJECT_SQLITE = [
    "CREATE TRIGGER ops_reject BEFORE INSERT ON customers__customers_v1 "
    "WHEN NEW.email LIKE 'reject-%' BEGIN SELECT RAISE(ABORT, 'refused by ops_reject'); END"
]
REJECT_POSTGRES = [
    "CREATE FUNCTION ops_reject() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF NEW.email LIKE 'reject-%' THEN RAISE EXCEPTION 'refused by ops_reject'; END IF; "
    "RETURN NEW; END $$",
    "CREATE TRIGGER ops_reject BEFORE INSERT ON customers__customers_v1 "
    "FOR EACH ROW EXECUTE FUNCTION ops_reject()",
]
ACCEPT_SQLITE = ["DROP TRIGGER ops_reject"]
ACCEPT_POSTGRES = ["DROP TRIGGER ops_reject ON customers__customers_v1"]


def test_parked_events_are_listed_retried_and_discarded(service: Service) -> None:
    on_sqlite = service.read_schema is None
    service.read_sql(REJECT_SQLITE if on_sqlite else REJECT_POSTGRES)
    first = service.register(f"reject-{uuid.uuid4().hex[:8]}@example.com")
    second = service.register(f"reject-{uuid.uuid4().hex[:8]}@example.com")

    parked = wait_until(
        lambda: (p := service.cli_json("projections", "parked", "customers")) and len(p) == 2 and p,
        "two parked events",
    )
    assert [p["stream_id"] for p in parked] == [f"Customer-{first}", f"Customer-{second}"]
    assert all(p["event_type"] == "CustomerRegistered" for p in parked)
    assert all("refused by ops_reject" in p["error"] for p in parked)
    table = service.cli("projections", "parked", "customers", COLUMNS="250")
    assert table.returncode == 0
    assert parked[0]["id"] in table.stdout
    assert "refused by ops_reject" in table.stdout
    status = {s["name"]: s for s in service.cli_json("projections", "status")}
    assert status["customers"]["parked"] == 2
    assert status["order_details"]["parked"] == 0  # the other read models took them

    # Before the fix a retry fails again, and the event stays parked.
    again = service.cli("projections", "retry", "customers", parked[0]["id"])
    assert again.returncode == 1
    assert "still parked" in again.stderr
    assert len(service.cli_json("projections", "parked", "customers")) == 2

    service.read_sql(ACCEPT_SQLITE if on_sqlite else ACCEPT_POSTGRES)
    retried = service.cli("projections", "retry", "customers", parked[0]["id"])
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "applied and unparked" in retried.stdout
    assert service.http.get(f"/api/v1/customers/{first}").status_code == 200

    discarded = service.cli(
        "projections", "discard", "customers", parked[1]["id"], "--reason", "test sign-up"
    )
    assert discarded.returncode == 0, discarded.stdout + discarded.stderr
    assert "test sign-up" in discarded.stdout
    logged = [json.loads(line) for line in discarded.stderr.splitlines()]
    (record,) = [r for r in logged if r.get("reason") == "test sign-up"]
    assert record["projection"] == "customers"
    assert record["parked_id"] == parked[1]["id"]
    assert record["stream_id"] == f"Customer-{second}"
    assert record["user"]
    assert record["level"] == "warning"

    assert service.cli_json("projections", "parked", "customers") == []
    assert service.http.get(f"/api/v1/customers/{second}").status_code == 404


def test_unknown_names_and_ids_are_errors(service: Service) -> None:
    for args, code, says in [
        (["projections", "parked", "nope"], 1, "no projection 'nope'"),
        (["projections", "retry", "customers", "12345"], 1, "no parked event '12345'"),
        (["projections", "discard", "customers", "9", "--reason", "x"], 1, "no parked event"),
        (["projections", "retry", "customers"], 2, "ID or --all"),
        (["projections", "discard", "customers", "9"], 2, "--reason"),
    ]:
        result = service.cli(*args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert says in result.stderr, (args, result.stderr)
    everything = service.cli("projections", "retry", "customers", "--all")
    assert everything.returncode == 0
    assert "no parked events" in everything.stdout


def test_rebuild_follows_the_runner_until_the_new_version_is_live(service: Service) -> None:
    service.place(service.register(), service.add_product())
    result = service.cli("projections", "rebuild", "customers", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "customers: v2 is live" in result.stdout
    statuses = {s["name"]: s for s in service.cli_json("projections", "status")}
    assert statuses["customers"]["version"] == 2

    # Parked events of the rebuilt version (numbered past the code's) can be retried too.
    on_sqlite = service.read_schema is None
    reject = REJECT_SQLITE if on_sqlite else REJECT_POSTGRES
    service.read_sql([s.replace("_v1", "_v2") for s in reject])
    customer = service.register(f"reject-{uuid.uuid4().hex[:8]}@example.com")
    (parked,) = wait_until(
        lambda: service.cli_json("projections", "parked", "customers"), "a parked event"
    )
    accept = ACCEPT_SQLITE if on_sqlite else ACCEPT_POSTGRES
    service.read_sql([s.replace("_v1", "_v2") for s in accept])
    retried = service.cli("projections", "retry", "customers", "--all")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert service.http.get(f"/api/v1/customers/{customer}").status_code == 200
    assert parked["version"] == 2


def test_rebuild_while_writes_continue_never_shows_a_half_built_model(service: Service) -> None:
    # Orders keep coming while order_search is rebuilt beside the live version. Every
    # query, sent with the token of the order just placed, must answer 200 with all the
    # orders placed so far: readers stay on the complete live version until the switch.
    def new_product() -> str:
        return service.add_product()  # stock 10: five orders of two units each

    product = new_product()
    for n in range(10):
        if n and n % 5 == 0:
            product = new_product()
        service.place(service.register(), product)
    problems: list[str] = []
    placed = [10]
    stop = threading.Event()

    def keep_writing_and_reading() -> None:
        client = httpx.Client(
            base_url=service.http.base_url, headers=service.http.headers, timeout=10
        )
        current = new_product()
        with client:
            while not stop.is_set():
                if placed[0] % 5 == 0:
                    current = new_product()
                customer = service.register()
                answer = client.post(
                    "/api/v1/orders",
                    json={
                        "customer_id": customer,
                        "items": [{"product_id": current, "quantity": 2}],
                        "shipping_address": {
                            "street": "1 Quay",
                            "city": "Leith",
                            "postal_code": "EH6",
                            "country": "GB",
                        },
                    },
                )
                if answer.status_code != 201:
                    problems.append(f"place: {answer.status_code} {answer.text}")
                    continue
                placed[0] += 1
                token = {"Consistency-Token": answer.headers["consistency-token"]}
                found = client.get(
                    "/api/v1/orders/search", params={"q": "Leith", "page_size": 1}, headers=token
                )
                if found.status_code != 200 or "stale-read" in found.headers:
                    problems.append(f"search: {found.status_code} {found.headers} {found.text}")
                elif found.json()["total"] < placed[0]:
                    problems.append(f"search saw {found.json()['total']} of {placed[0]} orders")

    writer = threading.Thread(target=keep_writing_and_reading)
    writer.start()
    try:
        wait_until(lambda: placed[0] >= 13 or None, "writes under way")
        result = service.cli("projections", "rebuild", "order_search", "--timeout", "60")
        wait_until(lambda: placed[0] >= 16 or None, "writes after the switch")
    finally:
        stop.set()
        writer.join(30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"order_search: v{code_version('order_search') + 1} is live" in result.stdout
    assert problems == [], problems[:5]
    assert placed[0] >= 16
