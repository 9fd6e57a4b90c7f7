"""Dependencies lost while ``orders serve`` is under load: PostgreSQL cut off (connections
reset, then black-holed), Redis flushed, Redis cut off. Each fault goes through a
:class:`~.proxy.TcpProxy` in front of the real server (or, for the flush, touches only the
service's own key prefix), so the servers and the tests running beside this one carry on.

Every request must be answered within :data:`ANSWER_BOUND` seconds, never with a 500: a
dependency that is down is a 503 problem+json; then the service and its projection runner
recover by themselves, and nothing answered 2xx is missing from the read models.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from e2e.test_serve import Server, orders
from redis.asyncio import Redis

from orders.auth import Role, TokenService

from .harness import ADDRESS, SECRET, verify
from .proxy import CutMode, TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

log = logging.getLogger(__name__)

PG_TIMEOUTS = "connect_timeout=3&command_timeout=3"
"""The service's PostgreSQL timeouts (the defaults, set explicitly: the bound rests on
them). A black-holed statement fails after 3 s, asyncpg waits up to 3 s more for its
cancellation, and a new connection may take 3 s: a 503 within about 9 s."""
REDIS_TIMEOUT = "timeout=4"
"""The service's Redis timeouts (the default, set explicitly): connect, and one reply."""
ANSWER_BOUND = 10.0
"""Seconds within which every request must be answered, whatever is down."""
RECOVERY_DEADLINE = 30.0
"""Seconds the service has, once a dependency is back, to serve again / catch up."""
HOLD = 2.0
"""Seconds a fault is kept on after the first 503 it caused: requests keep coming."""
WORKERS = 4
WARM_UP = 20
"""Orders placed before each fault."""
PROBLEM = "application/problem+json"

# Deletes every key under a prefix in one script, so that, like FLUSHDB for this service
# alone, no commit of the runner lands between two deletions.
_FLUSH_PREFIX = """
local cursor, deleted = '0', 0
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    redis.call('DEL', key)
    deleted = deleted + 1
  end
until cursor == '0'
return deleted
"""


def through(proxy: TcpProxy, url: str) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@" if credentials else ""
    return urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))


def upstream(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 0


@dataclass
class Answer:
    what: str
    """``command``, ``sql-query`` (a read model in PostgreSQL) or ``redis-query``."""
    status: int
    """0: no answer (the client's own timeout or a broken connection)."""
    started: float
    finished: float
    problem: bool = False
    stale: bool = False

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass
class Load:
    """Workers placing orders and reading order details (Redis) and searches (SQL)."""

    http: httpx.AsyncClient
    customer: str
    product: str
    answers: list[Answer] = field(default_factory=list)
    placed: dict[str, str] = field(default_factory=dict)
    """Order id -> consistency token, for every order answered 201."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    faults: list[tuple[float, float]] = field(default_factory=list)
    """(cut, recovered) moments of every fault."""
    emptied: list[tuple[float, float]] = field(default_factory=list)
    """(flushed, rebuilt) moments of the read model deleted under the service: a read whose
    wait succeeded just before the flush may find nothing just after, and cannot know."""

    async def request(self, what: str, method: str, path: str, **kw: Any) -> httpx.Response | None:
        started = time.monotonic()
        response: httpx.Response | None
        try:
            response = await self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            log.warning("%s %s: no answer: %r", method, path, exc)
            response = None
        answer = Answer(what, 0 if response is None else response.status_code, started, 0.0)
        answer.finished = time.monotonic()
        if response is not None:
            answer.problem = response.headers.get("content-type", "").startswith(PROBLEM)
            answer.stale = response.headers.get("stale-read") == "true"
        self.answers.append(answer)
        self.changed.set()
        return response

    async def worker(self) -> None:
        body = {
            "customer_id": self.customer,
            "items": [{"product_id": self.product, "quantity": 1}],
            "shipping_address": ADDRESS,
        }
        while not self.stop.is_set():
            placed = await self.request("command", "POST", "/orders", json=body)
            if placed is not None and placed.status_code == 201:
                order_id = placed.json()["order_id"]
                self.placed[order_id] = placed.headers["consistency-token"]
                token = {"Consistency-Token": self.placed[order_id]}
                await self.request("redis-query", "GET", f"/orders/{order_id}", headers=token)
            await self.request("sql-query", "GET", "/orders/search", params={"page_size": 5})
            if placed is None or placed.status_code != 201:
                await asyncio.sleep(0.05)  # pacing: a dependency is down, answers are fast

    def since(self, moment: float, what: str | None = None) -> list[Answer]:
        """Answers that came after ``moment`` (to requests in flight then, or sent later)."""
        return [
            a for a in self.answers if a.finished >= moment and (what is None or a.what == what)
        ]

    def during(self, answer: Answer, windows: list[tuple[float, float]]) -> bool:
        return any(start <= answer.finished and answer.started <= end for start, end in windows)

    def during_fault(self, answer: Answer) -> bool:
        return self.during(answer, self.faults + self.emptied)

    def stale_not_found(self) -> int:
        """Reads of an order just placed answered 404 during a fault: the runner could not
        project it within the consistency timeout (a stale read, which says so)."""
        return sum(1 for a in self.answers if a.what == "redis-query" and a.status == 404)

    async def first(self, check: Callable[[Answer], bool], after: float, timeout: float) -> Answer:
        """The first answer that came after ``after`` and passes ``check``."""
        deadline = time.monotonic() + timeout
        while True:
            for answer in self.since(after):
                if check(answer):
                    return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = Counter((a.what, a.status) for a in self.since(after))
                raise AssertionError(f"no such answer within {timeout}s; seen {dict(seen)}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    def check_answers(self) -> None:
        """No 500, no request without an answer or slower than the bound; every failure
        a 503 problem+json."""
        statuses = Counter((a.what, a.status) for a in self.answers)
        slowest = max(a.seconds for a in self.answers)
        assert slowest <= ANSWER_BOUND, f"a request took {slowest:.1f}s; {dict(statuses)}"
        for answer in self.answers:
            stale = answer.what == "redis-query" and answer.status == 404
            assert answer.status in (200, 201, 503) or (stale and self.during_fault(answer)), (
                answer,
                dict(statuses),
            )
            if stale and not self.during(answer, self.emptied):
                # "Not there yet", which the client must be able to tell.
                assert answer.stale, answer
                assert answer.problem, answer
            if answer.status == 503:
                assert answer.problem, answer


@pytest.fixture
async def staff_http() -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    token = TokenService(SECRET).issue("staff", Role.STAFF)
    clients: list[httpx.AsyncClient] = []

    def client(url: str) -> httpx.AsyncClient:
        http = httpx.AsyncClient(
            base_url=f"{url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            # Longer than the bound, so that a request over it is measured, not cut short.
            timeout=3 * ANSWER_BOUND,
        )
        clients.append(http)
        return http

    yield client
    for http in clients:
        await http.aclose()


def service_env(base_env: dict[str, str], **urls: str) -> dict[str, str]:
    return {
        **base_env,
        "ORDERS_JWT_SECRET": SECRET,
        "ORDERS_LOG_LEVEL": "warning",
        "ORDERS_EVENT_STORE_URL": urls["events"],
        "ORDERS_READ_DB_URL": urls["read"],
        "ORDERS_REDIS_URL": urls["redis"],
    }


async def started(env: dict[str, str]) -> Server:
    server = Server(env)
    await asyncio.to_thread(server.wait_ready, 60)
    return server


async def setup(http: httpx.AsyncClient) -> tuple[str, str]:
    customer = await http.post(
        "/customers", json={"name": "Out Age", "email": f"{uuid.uuid4().hex[:12]}@example.org"}
    )
    assert customer.status_code == 201, customer.text
    body = {"sku": uuid.uuid4().hex[:12], "name": "Cable", "price": "3.10", "stock": 1_000_000}
    product = await http.post("/products", json=body)
    assert product.status_code == 201, product.text
    return str(customer.json()["customer_id"]), str(product.json()["product_id"])


async def caught_up(env: dict[str, str]) -> list[dict[str, Any]]:
    """``orders projections status --json`` once every projection is live, 0 behind."""
    deadline = time.monotonic() + RECOVERY_DEADLINE
    while True:
        result = await asyncio.to_thread(orders, "projections", "status", "--json", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        statuses: list[dict[str, Any]] = json.loads(result.stdout)
        if all(s["state"] == "live" and s["events_behind"] == 0 for s in statuses):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"projections not caught up: {statuses}")
        await asyncio.sleep(0.5)


async def all_readable(http: httpx.AsyncClient, placed: dict[str, str]) -> None:
    """Every order answered 201 reads back, through its token, without a stale read."""
    for order_id, token in placed.items():
        got = await http.get(f"/orders/{order_id}", headers={"Consistency-Token": token})
        assert got.status_code == 200, got.text
        assert "stale-read" not in got.headers, order_id


@dataclass
class Outage:
    """What one fault did, for the report."""

    fault: str
    connections_cut: int
    to_503: float
    """Seconds from the cut to the first 503."""
    held: float
    """Seconds the fault lasted."""
    to_recover: float
    """Seconds from the restore to the first success of the same kind of request."""
    answers_503: int
    slowest: float = 0.0
    """Seconds the slowest answer after the cut took."""


async def outage(load: Load, proxy: TcpProxy, mode: CutMode, failing: str) -> Outage:
    """Cut ``proxy``; once ``failing`` requests answer 503 (and :data:`HOLD` more
    seconds), restore it and wait until they succeed again."""
    for _ in range(WARM_UP):  # under load first
        await load.first(lambda a: a.what == "command" and a.status == 201, time.monotonic(), 30)
    cut_at = time.monotonic()
    connections = await asyncio.to_thread(proxy.cut, mode)
    first_503 = await load.first(lambda a: a.what == failing and a.status == 503, cut_at, 30)
    to_503 = first_503.finished - cut_at
    await asyncio.sleep(HOLD)  # the fault's duration, not a synchronisation
    restored_at = time.monotonic()
    await asyncio.to_thread(proxy.restore)
    recovered = await load.first(
        lambda a: a.what == failing and a.status in (200, 201), restored_at, RECOVERY_DEADLINE
    )
    answers_503 = sum(1 for a in load.since(cut_at) if a.status == 503)
    load.faults.append((cut_at, recovered.finished))
    result = Outage(
        f"{failing} dependency {mode}",
        connections,
        round(to_503, 2),
        round(restored_at - cut_at, 2),
        round(recovered.finished - restored_at, 2),
        answers_503,
        round(max(a.seconds for a in load.since(cut_at)), 2),
    )
    log.warning("outage: %s", result)
    return result


async def test_postgres_cut_off_under_load(
    base_env: dict[str, str],
    postgres_url: str,
    pg_schema: str,
    pg_read_schema: str,
    redis_url: str,
    redis_prefix: str,
    staff_http: Callable[[str], httpx.AsyncClient],
) -> None:
    redis = f"{redis_url}?prefix={redis_prefix}"
    direct = service_env(
        base_env,
        events=f"{postgres_url}?schema={pg_schema}",
        read=f"{postgres_url}?schema={pg_read_schema}",
        redis=redis,
    )
    with TcpProxy(*upstream(postgres_url)) as proxy:
        proxied = service_env(
            base_env,
            events=f"{through(proxy, postgres_url)}?schema={pg_schema}&{PG_TIMEOUTS}",
            read=f"{through(proxy, postgres_url)}?schema={pg_read_schema}&{PG_TIMEOUTS}",
            redis=redis,
        )
        server = await started(proxied)
        try:
            http = staff_http(server.url)
            load = Load(http, *await setup(http))
            workers = [asyncio.create_task(load.worker()) for _ in range(WORKERS)]
            try:
                reset = await outage(load, proxy, "reset", "command")
                blackhole = await outage(load, proxy, "blackhole", "command")
                # The read models in PostgreSQL fail and come back the same way.
                assert any(a.what == "sql-query" and a.status == 503 for a in load.answers)
                await load.first(lambda a: a.what == "sql-query" and a.status == 200, 0, 30)
            finally:
                load.stop.set()
                await asyncio.gather(*workers)
            load.check_answers()
            statuses = await caught_up(direct)
            await all_readable(http, load.placed)
            report = await asyncio.to_thread(verify, direct)
        finally:
            proxy.restore()  # a failed test must not leave the server unable to stop
            server.stop()
        log_text = server.log.read_text()
    assert report["differences"] == 0, report
    assert reset.connections_cut > 0
    assert blackhole.connections_cut > 0
    assert {s["name"] for s in statuses} >= {"order_details", "order_search"}
    assert ": 500 " not in log_text, log_text[-5000:]
    log.warning(
        "postgres outage: %d requests (%s), %d orders placed, %d stale 404s, %s, %s",
        len(load.answers),
        dict(Counter((a.what, a.status) for a in load.answers)),
        len(load.placed),
        load.stale_not_found(),
        reset,
        blackhole,
    )


async def flush_prefix(redis_url: str, prefix: str) -> int:
    """Every key of the service gone at once: FLUSHDB for this service alone (the db is
    shared with other tests; its prefix is its own)."""
    client = Redis.from_url(redis_url)
    try:
        return int(await client.eval(_FLUSH_PREFIX, 0, prefix.replace("*", r"\*") + "*"))
    finally:
        await client.aclose()


async def test_redis_flushed_then_cut_off_under_load(
    base_env: dict[str, str],
    postgres_url: str,
    pg_schema: str,
    pg_read_schema: str,
    redis_url: str,
    redis_prefix: str,
    staff_http: Callable[[str], httpx.AsyncClient],
) -> None:
    with TcpProxy(*upstream(redis_url)) as proxy:
        env = service_env(
            base_env,
            events=f"{postgres_url}?schema={pg_schema}",
            read=f"{postgres_url}?schema={pg_read_schema}",
            redis=f"{through(proxy, redis_url)}?prefix={redis_prefix}&{REDIS_TIMEOUT}",
        )
        server = await started(env)
        try:
            http = staff_http(server.url)
            load = Load(http, *await setup(http))
            workers = [asyncio.create_task(load.worker()) for _ in range(WORKERS)]
            try:
                for _ in range(WARM_UP):
                    await load.first(
                        lambda a: a.what == "redis-query" and a.status == 200, time.monotonic(), 30
                    )
                before = dict(load.placed)
                shown = {}
                for order_id, token in before.items():
                    got = await http.get(
                        f"/orders/{order_id}", headers={"Consistency-Token": token}
                    )
                    assert got.status_code == 200, got.text
                    shown[order_id] = got.json()
                flushed_at = time.monotonic()
                keys = await flush_prefix(redis_url, redis_prefix)
                # Orders placed before the flush come back, as they were, once rebuilt.
                missing = set(before)
                not_found = 0
                while missing:
                    assert time.monotonic() - flushed_at < RECOVERY_DEADLINE, missing
                    for order_id in list(missing):
                        got = await http.get(f"/orders/{order_id}")
                        assert got.status_code in (200, 404), got.text
                        if got.status_code == 200:
                            assert got.json() == shown[order_id]
                            missing.discard(order_id)
                        else:
                            not_found += 1
                rebuilt = time.monotonic() - flushed_at
                load.emptied.append((flushed_at, flushed_at + rebuilt))
                reset = await outage(load, proxy, "reset", "redis-query")
                blackhole = await outage(load, proxy, "blackhole", "redis-query")
            finally:
                load.stop.set()
                await asyncio.gather(*workers)
            load.check_answers()
            await caught_up(env)
            await all_readable(http, load.placed)
            report = await asyncio.to_thread(verify, env)
        finally:
            proxy.restore()  # a failed test must not leave the server unable to stop
            server.stop()
        log_text = server.log.read_text()
    assert report["differences"] == 0, report
    vanished = [line for line in log_text.splitlines() if "checkpoint vanished" in line]
    assert len(vanished) == 1, log_text[-5000:]
    log.warning(
        "redis outage: %d requests (%s), %d orders placed; flush: %d keys, %d orders "
        "re-read, %d answered 404 meanwhile, rebuilt in %.2fs; %s; %s",
        len(load.answers),
        dict(Counter((a.what, a.status) for a in load.answers)),
        len(load.placed),
        keys,
        len(before),
        not_found,
        rebuilt,
        reset,
        blackhole,
    )
