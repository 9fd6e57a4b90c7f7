"""``orders serve`` as real processes, talked to over the network."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def orders(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orders", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Server:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(env["ORDERS_DATA_DIR"]).parent / f"serve-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orders", "serve", "--port", str(self.port), *args],
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not up in {timeout}s: {self.log.read_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise
        return self.process.returncode


@pytest.fixture
def base_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERS_")}
    env["ORDERS_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_embedded_default_serves_demo_and_stops_on_sigterm(base_env: dict[str, str]) -> None:
    server = Server(base_env)
    try:
        server.wait_ready()
        demo = orders("demo", "--url", server.url, "--orders", "12", env=base_env)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "curl" in demo.stdout
        assert "Authorization: Bearer" in demo.stdout
        token = orders("token", "--staff", env=base_env)
        assert token.returncode == 0, token.stderr
        headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
        for _ in range(100):  # the demo's last writes may still be on their way
            found = httpx.get(f"{server.url}/api/v1/orders/search", headers=headers)
            if found.json()["total"] == 12:
                break
            time.sleep(0.05)
        assert found.status_code == 200, found.text
        assert found.json()["total"] == 12, found.text
        docs = httpx.get(f"{server.url}/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
    finally:
        code = server.stop()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so that a supervisor sees it.
    assert code in (0, -signal.SIGTERM), server.log.read_text()
    assert "Application shutdown complete" in server.log.read_text()


def test_bad_settings_are_one_line_and_exit_2(base_env: dict[str, str]) -> None:
    result = orders("token", "--staff", env={**base_env, "ORDERS_EVENT_STORE_URL": "mysql://x"})
    assert result.returncode == 2
    assert "ORDERS_EVENT_STORE_URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    result = orders("serve", env={**base_env, "ORDERS_PORT": "eighty"})
    assert result.returncode == 2
    assert "ORDERS_PORT" in result.stderr
    result = orders("token", "--customer", "nobody", env=base_env)
    assert result.returncode == 2
    assert "UUID" in result.stderr


def test_help_says_what_each_command_does(base_env: dict[str, str]) -> None:
    for command in ("serve", "demo", "token"):
        result = orders(command, "--help", env=base_env)
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout


def test_api_and_runner_processes_on_postgres_and_redis(
    base_env: dict[str, str],
    postgres_url: str,
    pg_schema: str,
    pg_read_schema: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    env = {
        **base_env,
        "ORDERS_EVENT_STORE_URL": f"{postgres_url}?schema={pg_schema}",
        "ORDERS_READ_DB_URL": f"{postgres_url}?schema={pg_read_schema}",
        "ORDERS_REDIS_URL": f"{redis_url}?prefix={redis_prefix}",
        "ORDERS_JWT_SECRET": "split-" + "z" * 40,
    }
    runners = [Server(env, "--runner-only"), Server(env, "--runner-only")]
    apis = [Server(env, "--api-only"), Server(env, "--api-only")]
    try:
        for api in apis:
            api.wait_ready()
        staff = {"Authorization": "Bearer " + orders("token", "--staff", env=env).stdout.strip()}
        first, second = (httpx.Client(base_url=a.url, headers=staff, timeout=10) for a in apis)
        customer = first.post(
            "/api/v1/customers", json={"name": "Split", "email": f"{uuid.uuid4().hex}@x.org"}
        )
        assert customer.status_code == 201, customer.text
        product = first.post(
            "/api/v1/products",
            json={"sku": uuid.uuid4().hex[:10], "name": "Thing", "price": "2.50", "stock": 50},
        )
        assert product.status_code == 201, product.text
        for n in range(20):
            placed = first.post(
                "/api/v1/orders",
                json={
                    "customer_id": customer.json()["customer_id"],
                    "items": [{"product_id": product.json()["product_id"], "quantity": 1}],
                    "shipping_address": {
                        "street": "s",
                        "city": "c",
                        "postal_code": "p",
                        "country": "GB",
                    },
                },
            )
            assert placed.status_code == 201, placed.text
            # Read through the OTHER API process: woken by the runner's commit elsewhere.
            got = second.get(
                f"/api/v1/orders/{placed.json()['order_id']}",
                headers={"Consistency-Token": placed.headers["consistency-token"]},
            )
            assert got.status_code == 200, (n, got.text)
            assert "stale-read" not in got.headers, n
        statuses = second.get("/api/v1/projections")
        assert statuses.status_code == 200, statuses.text
    finally:
        codes = [s.stop() for s in apis + runners]
    assert all(c in (0, -signal.SIGTERM) for c in codes), [s.log.read_text() for s in apis]
