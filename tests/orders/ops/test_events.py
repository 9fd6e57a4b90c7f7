"""``orders events ...`` beside a running service."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from ops.conftest import Service

pytestmark = pytest.mark.slow


def test_show_prints_every_event_of_a_stream(service: Service) -> None:
    order = service.place(service.register(), service.add_product())
    shipped = service.http.post(f"/api/v1/orders/{order}/ship", json={"tracking_number": "T1"})
    assert shipped.status_code == 200, shipped.text

    events = service.cli_json("events", "show", f"Order-{order}")

    assert [(e["version"], e["type"]) for e in events] == [(1, "OrderPlaced"), (2, "OrderShipped")]
    placed, ship = events
    assert placed["payload"]["order_id"] == order
    assert placed["payload"]["total"] == "25.00"
    assert ship["payload"]["tracking_number"] == "T1"
    assert ship["user_id"] == "staff"
    assert all(e["correlation_id"] and e["causation_id"] and e["position"] for e in events)
    text = service.cli("events", "show", f"Order-{order}", COLUMNS="160")
    assert text.returncode == 0, text.stderr
    assert "OrderShipped" in text.stdout
    assert '"tracking_number": "T1"' in text.stdout  # pretty JSON
    assert ship["correlation_id"] in text.stdout
    missing = service.cli("events", "show", "Order-nope")
    assert missing.returncode == 1
    assert "no stream 'Order-nope'" in missing.stderr


def test_tail_follows_new_events_live(service: Service) -> None:
    earlier = service.register()
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orders",
            "events",
            "tail",
            "--type",
            "CustomerRegistered",
            "--limit",
            "2",
        ],
        env=service.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, tail.kill)
    watchdog.start()
    try:
        assert tail.stderr is not None
        started = tail.stderr.readline()  # it follows from here: what comes next is new
        assert "following events after position" in started, started
        customers = [service.register() for _ in range(3)]
        out, err = tail.communicate(timeout=30)
    finally:
        watchdog.cancel()
        tail.kill()
    assert tail.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 2, out
    for line, customer in zip(lines, customers, strict=False):
        assert f"Customer-{customer}" in line
        assert "CustomerRegistered" in line
        assert f'"customer_id":"{customer}"' in line  # compact payload
    assert earlier not in out

    from_start = service.cli(
        "events", "tail", "--from-start", "--limit", "1", "--type", "CustomerRegistered"
    )
    assert from_start.returncode == 0, from_start.stderr
    assert f"Customer-{earlier}" in from_start.stdout
