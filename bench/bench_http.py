"""HTTP benchmark: the Orders service against a plain CRUD app, PlaceOrder and GetOrder.

    .venv/bin/python bench/bench_http.py [--rounds 3] [--seconds 3] [--clients 1,8,32,64]
        [--targets sqlite,postgres,crud] (add postgres-split for the two-process layout) [--url postgresql://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/15]
    .venv/bin/python bench/bench_http.py --quick     # smoke run, about a minute, no JSON

Servers, each one uvicorn worker started as a subprocess on a free port of 127.0.0.1:

- ``sqlite``: ``orders serve`` on the embedded default (SQLite files in a temp dir, the
  projection runner in the same process);
- ``postgres``: ``orders serve`` on PostgreSQL (events and SQL read models in two fresh
  schemas) with order details in Redis (a fresh key prefix);
- ``postgres-split`` (only when named in ``--targets``): the same on PostgreSQL + Redis,
  but the API in one process (``orders serve --api-only``) and the projection runner in a
  second (``orders serve --runner-only``), in schemas and a key prefix of its own. It uses
  two processes, so it is not the one-worker comparison: it shows what moving the runner
  out of the API's process gives;
- ``crud``: ``bench/crud_app.py``, the same routes as FastAPI + asyncpg over plain tables
  (one transaction per order: check the customer, lock and read the products, decrement
  their stock, insert the order), in a fresh schema.

The load comes from one separate process (this script with ``--load-child``): ``N``
asyncio tasks, each with its own keep-alive HTTP/1.1 connection (plain asyncio streams),
each sending its next request as soon as the last one is answered, for ``--seconds``
after a 0.5 s warm-up. The load process's CPU share is printed (``client CPU``): it
stays near 0.1 of a core. (httpx's shared client, ``--load-client httpx``, used half a
core and capped every server alike from 32 clients on: CRUD GetOrder fell from 944 to
88 req/s.) Scenarios, each at every client count:

- ``place``: ``POST /api/v1/orders`` of 1-3 lines from 40 products (stock that never runs
  out), for one of 20 customers;
- ``get``: ``GET /api/v1/orders/{id}`` of one of 200 orders placed before the run;
- ``ryw`` (8 clients only): place an order, then get it with its ``Consistency-Token``;
  the latency is from the command's answer to the query's answer (the CRUD app has no
  tokens: there it is just the GET after the POST).

Within a round every scenario runs on each server back to back, in an order that rotates
from round to round, so that load drifting over seconds hits them alike. The table shows
medians over rounds and the median of the per-round ratios to the CRUD app. The 1-minute
load average is recorded before and after every measurement. Results go to
``bench/results/http.json`` and the plots to ``docs/bench/http_*.png``. Schemas and
Redis keys are removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from _publish import publish

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "http.json"
SECRET = "bench-http-secret-" + "b" * 40
ADDRESS = {"street": "1 Dock Road", "city": "Hull", "postal_code": "HU1", "country": "GB"}
CUSTOMERS, PRODUCTS, SEEDED_ORDERS = 20, 40, 200
STOCK = 1_000_000_000
WARMUP = 0.5
RYW_CLIENTS = 8
GOALS = {
    "place": "PlaceOrder >= 0.6x CRUD req/s at 32 clients, p99 <= 2x CRUD's",
    "get": "GetOrder >= 1x CRUD req/s at 32 clients",
    "ryw": "read-your-writes p99 <= 20 ms at 8 clients",
}
LABELS = {
    "sqlite": "cqrskit, embedded SQLite",
    "postgres": "cqrskit, PostgreSQL + Redis",
    "postgres-split": "cqrskit, PG + Redis, runner 2nd process",
    "crud": "CRUD, FastAPI + asyncpg",
}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# -- the load generator (a process of its own) ---------------------------------------------


class Connection:
    """One client's keep-alive HTTP/1.1 connection: asyncio streams, nothing else.

    A load generator must cost the machine as little as it can: httpx's connection pool
    alone kept the load process's core busy from 32 clients on (``--load-client httpx``
    shows it), which capped every server alike."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1\r\n", self.head]
        lines += [f"{k}: {v}\r\n" for k, v in (headers or {}).items()]
        payload = b"" if body is None else orjson.dumps(body)
        if body is not None:
            lines.append(f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n")
        self.writer.write("".join(lines).encode() + b"\r\n" + payload)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        answer = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                answer[name.strip().lower()] = value.strip()
        if answer.get("transfer-encoding") == "chunked":
            content = b""
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                content += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")
        else:
            content = await self.reader.readexactly(int(answer.get("content-length", "0")))
        if answer.get("connection") == "close":
            await self.close()
        return status, answer, content

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


class HttpxConnection:
    """The same interface over one shared httpx client (for comparison only)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        got = await self.http.request(method, path, json=body, headers=headers)
        return got.status_code, dict(got.headers), got.content

    async def close(self) -> None:
        pass


async def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Drive one server with ``spec["clients"]`` concurrent clients for ``spec["seconds"]``."""
    rng = random.Random(spec.get("seed", 1))
    clients: int = spec["clients"]
    customers, products, orders = spec["customers"], spec["products"], spec["orders"]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    stale = 0

    def order_body() -> dict[str, Any]:
        chosen = rng.sample(products, rng.randint(1, 3))
        return {
            "customer_id": rng.choice(customers),
            "items": [{"product_id": p, "quantity": rng.randint(1, 2)} for p in chosen],
            "shipping_address": ADDRESS,
        }

    http = httpx.AsyncClient(
        base_url=spec["url"],
        headers={"Authorization": f"Bearer {spec['token']}"},
        limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients),
        timeout=60,
    )
    host, port = spec["url"].removeprefix("http://").split(":")
    start = time.perf_counter()
    counted_from, deadline = start + WARMUP, start + WARMUP + spec["seconds"]

    async def one(conn: Connection | HttpxConnection) -> tuple[float, float, bool]:
        """One operation: when it started, when its answer came, whether it was ok."""
        nonlocal stale
        if spec["op"] == "get":
            began = time.perf_counter()
            status, _, _ = await conn.request("GET", f"/api/v1/orders/{rng.choice(orders)}")
            statuses[f"GET {status}"] += 1
            return began, time.perf_counter(), status == 200
        began = time.perf_counter()
        status, headers, content = await conn.request("POST", "/api/v1/orders", order_body())
        statuses[f"POST {status}"] += 1
        if spec["op"] == "place" or status != 201:
            return began, time.perf_counter(), status == 201
        answered = time.perf_counter()
        token = headers.get("consistency-token")
        extra = {"Consistency-Token": token} if token else {}
        order_id = orjson.loads(content)["order_id"]
        status, headers, _ = await conn.request("GET", f"/api/v1/orders/{order_id}", None, extra)
        statuses[f"GET {status}"] += 1
        stale += headers.get("stale-read") == "true"
        return answered, time.perf_counter(), status == 200

    async def client() -> None:
        conn: Connection | HttpxConnection = (
            HttpxConnection(http)
            if spec.get("load_client") == "httpx"
            else Connection(host, int(port), spec["token"])
        )
        try:
            while time.perf_counter() < deadline:
                began, ended, ok = await one(conn)
                if ok and began >= counted_from and ended <= deadline:
                    latencies.append(ended - began)
        finally:
            await conn.close()

    cpu = time.process_time()
    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        await http.aclose()
    cpu = time.process_time() - cpu
    return {
        "ok": len(latencies),
        "per_s": len(latencies) / spec["seconds"],
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "latencies_ms": [round(x * 1000, 3) for x in latencies],
        "statuses": dict(statuses),
        "stale_reads": stale,
        "load_generator_cpu": round(cpu / (time.perf_counter() - start), 2),
    }


def load_child() -> None:
    """Answer one JSON line on stdout for every JSON spec line on stdin."""
    for line in sys.stdin:
        result = asyncio.run(run_load(json.loads(line)))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


class LoadGenerator:
    """The load-generator process, driven over its stdin and stdout."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--load-child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(spec) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError("the load generator died")
        return json.loads(answer)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


# -- the servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_query(url: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


@dataclass
class Server:
    """One server subprocess and what the load needs to know about its data."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    customers: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    companion: list[str] | None = None
    """A second process started and stopped with the server (a projection runner)."""
    companion_process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*self.command, "--port", str(self.port)],
            env=self.env,
            cwd=ROOT,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        if self.companion is not None:
            self.companion_process = subprocess.Popen(
                self.companion,
                env=self.env,
                cwd=ROOT,
                stdout=self.log.with_suffix(".companion.log").open("w"),
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not up in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        for process in (self.process, self.companion_process):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


async def seed(server: Server, token: str) -> None:
    """Customers, products with stock that never runs out, and orders for GetOrder."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:

        async def post(path: str, body: dict[str, Any]) -> httpx.Response:
            response = await http.post(f"/api/v1{path}", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"{server.name}: POST {path}: {response.text}")
            return response

        for n in range(CUSTOMERS):
            body = {"name": f"Bench Customer {n}", "email": f"c{n}-{uuid.uuid4().hex[:8]}@ex.org"}
            server.customers.append((await post("/customers", body)).json()["customer_id"])
        for n in range(PRODUCTS):
            body = {"sku": f"B-{n:03d}-{uuid.uuid4().hex[:6]}", "name": f"Widget {n}"}
            body |= {"price": f"{5 + n}.99", "stock": STOCK}
            server.products.append((await post("/products", body)).json()["product_id"])
        rng, placed = random.Random(3), None
        for _ in range(SEEDED_ORDERS):
            items = [{"product_id": p, "quantity": 1} for p in rng.sample(server.products, 2)]
            body = {"customer_id": rng.choice(server.customers), "items": items}
            placed = await post("/orders", body | {"shipping_address": ADDRESS})
            server.orders.append(placed.json()["order_id"])
        assert placed is not None
        # The read model has every seeded order before the first GET is timed.
        token_header = placed.headers.get("consistency-token")
        extra = {"Consistency-Token": token_header} if token_header else {}
        got = await http.get(f"/api/v1/orders/{server.orders[-1]}", headers=extra)
        if got.status_code != 200 or got.headers.get("stale-read"):
            raise RuntimeError(f"{server.name}: seeded orders not readable: {got.text}")


@dataclass
class Stores:
    """The PostgreSQL schemas and the Redis prefix this run made (removed afterwards)."""

    url: str
    redis_url: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def schemas(self) -> list[str]:
        parts = ("events", "read", "crud", "split_events", "split_read")
        return [f"bench_http_{self.tag}_{part}" for part in parts]

    @property
    def redis_prefix(self) -> str:
        return f"bench-http:{self.tag}:"

    async def drop(self, redis: bool) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            for schema in self.schemas:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
        if redis:
            from redis.asyncio import Redis

            client = Redis.from_url(self.redis_url)
            try:
                keys = [k async for k in client.scan_iter(match=self.redis_prefix + "*")]
                if keys:
                    await client.delete(*keys)
            finally:
                await client.aclose()


def make_servers(targets: list[str], stores: Stores, tmp: Path) -> list[Server]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ORDERS_")}
    base |= {"ORDERS_JWT_SECRET": SECRET, "ORDERS_LOG_LEVEL": "warning"}
    serve = [sys.executable, "-m", "orders", "serve"]
    events, read, crud, split_events, split_read = stores.schemas
    servers = []
    for name in targets:
        env = base | {"ORDERS_DATA_DIR": str(tmp / name)}
        if name == "sqlite":
            servers.append(Server(name, serve, env, tmp / f"{name}.log"))
        elif name in ("postgres", "postgres-split"):
            split = name == "postgres-split"
            env |= {
                "ORDERS_EVENT_STORE_URL": with_query(
                    stores.url, schema=split_events if split else events
                ),
                "ORDERS_READ_DB_URL": with_query(stores.url, schema=split_read if split else read),
                "ORDERS_REDIS_URL": with_query(
                    stores.redis_url, prefix=stores.redis_prefix + ("split:" if split else "")
                ),
            }
            if split:
                server = Server(name, [*serve, "--api-only"], env, tmp / f"{name}.log")
                server.companion = [*serve, "--runner-only"]
                servers.append(server)
            else:
                servers.append(Server(name, serve, env, tmp / f"{name}.log"))
        else:
            command = [sys.executable, str(ROOT / "bench" / "crud_app.py")]
            command += ["--url", stores.url, "--schema", crud]
            servers.append(Server(name, command, env, tmp / f"{name}.log"))
    return servers


# -- the run -------------------------------------------------------------------------------


def cells(args: argparse.Namespace) -> list[tuple[str, int]]:
    """Every (scenario, clients) measured in a round."""
    out = [(op, n) for n in args.clients for op in ("place", "get")]
    return [*out, ("ryw", RYW_CLIENTS)]


def measure(args: argparse.Namespace, servers: list[Server]) -> list[dict[str, Any]]:
    from orders.auth import Role, TokenService

    token = TokenService(SECRET).issue("staff", Role.STAFF)
    load = LoadGenerator()
    runs: list[dict[str, Any]] = []
    try:
        for round_no in range(args.rounds):
            for index, (op, clients) in enumerate(cells(args)):
                shift = (round_no + index) % len(servers)
                for server in servers[shift:] + servers[:shift]:
                    before = load_average()
                    result = load.run(
                        {
                            "url": server.url,
                            "op": op,
                            "clients": clients,
                            "seconds": args.seconds,
                            "token": token,
                            "customers": server.customers,
                            "products": server.products,
                            "orders": server.orders,
                            "seed": round_no * 1000 + index,
                            "load_client": args.load_client,
                        }
                    )
                    result |= {"round": round_no + 1, "target": server.name, "op": op}
                    result |= {"clients": clients, "load_before": before}
                    result["load_after"] = load_average()
                    runs.append(result)
                    print(
                        f"  round {round_no + 1} {op:5} {clients:2} clients {server.name:8} "
                        f"{result['per_s']:8.1f}/s p50 {result['p50_ms']:7.2f} ms "
                        f"p99 {result['p99_ms']:7.2f} ms  load {before}",
                        flush=True,
                    )
    finally:
        load.close()
    return runs


def summarise(runs: list[dict[str, Any]], targets: list[str]) -> list[dict[str, Any]]:
    """One row per (scenario, clients, target): medians over rounds, ratios to CRUD."""
    rows = []
    keys = sorted({(r["op"], r["clients"]) for r in runs}, key=lambda k: (k[0] != "place", k))
    for op, clients in keys:
        for target in targets:
            mine = [
                r for r in runs if (r["op"], r["clients"], r["target"]) == (op, clients, target)
            ]
            row: dict[str, Any] = {
                "op": op,
                "clients": clients,
                "target": target,
                "per_s": round(statistics.median(r["per_s"] for r in mine), 1),
                "p50_ms": round(statistics.median(r["p50_ms"] for r in mine), 2),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in mine), 2),
                "rounds_per_s": [round(r["per_s"], 1) for r in mine],
                "rounds_p99_ms": [round(r["p99_ms"], 2) for r in mine],
                "errors": sum(
                    n
                    for r in mine
                    for status, n in r["statuses"].items()
                    if not status.split()[1].startswith("2")
                ),
                "stale_reads": sum(r["stale_reads"] for r in mine),
                "load_generator_cpu": statistics.median(r["load_generator_cpu"] for r in mine),
            }
            if target != "crud" and "crud" in targets:
                crud = {
                    r["round"]: r
                    for r in runs
                    if (r["op"], r["clients"], r["target"]) == (op, clients, "crud")
                }
                row["vs_crud_per_s"] = round(
                    statistics.median(r["per_s"] / crud[r["round"]]["per_s"] for r in mine), 3
                )
                row["vs_crud_p99"] = round(
                    statistics.median(r["p99_ms"] / crud[r["round"]]["p99_ms"] for r in mine), 3
                )
            rows.append(row)
    return rows


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if row["target"] == "crud":
            continue
        if row["op"] == "place" and row["clients"] == 32 and "vs_crud_per_s" in row:
            met = row["vs_crud_per_s"] >= 0.6 and row["vs_crud_p99"] <= 2.0
            measured = f"{row['vs_crud_per_s']:.2f}x req/s, p99 {row['vs_crud_p99']:.2f}x"
        elif row["op"] == "get" and row["clients"] == 32 and "vs_crud_per_s" in row:
            met = row["vs_crud_per_s"] >= 1.0
            measured = f"{row['vs_crud_per_s']:.2f}x req/s"
        elif row["op"] == "ryw":
            met = row["p99_ms"] <= 20 and row["stale_reads"] == 0
            measured = f"p99 {row['p99_ms']:.1f} ms, p50 {row['p50_ms']:.1f} ms"
            measured += f", {row['stale_reads']} stale reads"
        else:
            continue
        out.append({"goal": GOALS[row["op"]], "target": row["target"], "measured": measured})
        out[-1]["met"] = met
    return out


def print_table(rows: list[dict[str, Any]], checked: list[dict[str, Any]]) -> None:
    print()
    print(
        f"{'scenario':9} {'clients':>7} {'server':40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'vs CRUD':>8} {'p99 vs':>7} {'errors':>6} {'client CPU':>10}"
    )
    for row in rows:
        ratio = f"{row['vs_crud_per_s']:.2f}" if "vs_crud_per_s" in row else ""
        p99 = f"{row['vs_crud_p99']:.2f}" if "vs_crud_p99" in row else ""
        print(
            f"{row['op']:9} {row['clients']:>7} {LABELS[row['target']]:40} {row['per_s']:>9,.1f}"
            f" {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {ratio:>8} {p99:>7} {row['errors']:>6}"
            f" {row['load_generator_cpu']:>10.2f}"
        )
    print()
    for goal in checked:
        verdict = "met" if goal["met"] else "NOT met"
        print(f"{goal['goal']} [{LABELS[goal['target']]}]: {goal['measured']} -> {verdict}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stores = Stores(args.url, args.redis_url)
    tmp = Path(tempfile.mkdtemp(prefix="cqrskit-bench-http-"))
    servers = make_servers(args.targets, stores, tmp)
    started = datetime.now(UTC)
    load_start = load_average()
    try:
        for server in servers:
            server.start()
        for server in servers:
            await asyncio.to_thread(server.wait_ready)
        from orders.auth import Role, TokenService

        token = TokenService(SECRET).issue("staff", Role.STAFF)
        for server in servers:
            await seed(server, token)
        print(f"servers up and seeded; load average {load_average()}", flush=True)
        runs = await asyncio.to_thread(measure, args, servers)
    finally:
        for server in servers:
            server.stop()
        await stores.drop(redis=any(t.startswith("postgres") for t in args.targets))
        shutil.rmtree(tmp, ignore_errors=True)
    rows = summarise(runs, args.targets)
    checked = goals(rows)
    for result in runs:  # the JSON keeps the distributions that the plots draw
        if (result["op"], result["clients"]) not in (("place", 32), ("get", 32), ("ryw", 8)):
            del result["latencies_ms"]
    print_table(rows, checked)
    return {
        "benchmark": "bench_http",
        "when": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": {"before": load_start, "after": load_average()},
        },
        "settings": {
            "rounds": args.rounds,
            "seconds": args.seconds,
            "warmup_seconds": WARMUP,
            "clients": args.clients,
            "targets": {t: LABELS[t] for t in args.targets},
            "load_generator": f"one process, N asyncio tasks, {args.load_client} client",
        },
        "statistic": "medians over rounds; ratios are medians of per-round ratios to crud",
        "results": rows,
        "goals": checked,
        "runs": runs,
    }


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "CQRSKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("CQRSKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--clients", default="1,8,32,64", help="client counts, comma-separated")
    parser.add_argument(
        "--targets",
        default="sqlite,postgres,crud",
        help="servers: sqlite, postgres, crud, and postgres-split (API and runner in two "
        "processes; not in the default list)",
    )
    parser.add_argument(
        "--load-client",
        choices=("raw", "httpx"),
        default="raw",
        help="raw: one asyncio keep-alive connection per client; httpx: one shared client",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run; writes no JSON")
    parser.add_argument("--no-json", action="store_true", help="do not write results or plots")
    parser.add_argument("--load-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.clients = [int(n) for n in args.clients.split(",")]
    args.targets = [t.strip() for t in args.targets.split(",")]
    if unknown := set(args.targets) - set(LABELS):
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if args.quick:
        args.rounds, args.seconds, args.clients, args.no_json = 1, 1.0, [1, 32], True
    return args


def main() -> None:
    args = arguments()
    if args.load_child:
        load_child()
        return
    results = asyncio.run(run(args))
    if not args.no_json:
        publish(RESULTS, results, "http_plots")


if __name__ == "__main__":
    main()
