"""Server CPU per request: one bench_http server under one load, its process's CPU time.

    .venv/bin/python bench/bench_server_cpu.py [--target sqlite|postgres|crud]
        [--op place|get|ryw] [--clients 32] [--seconds 4] [--rounds 3]
        [--env ORDERS_MAX_CONCURRENT_COMMANDS=8] [--py-spy profile.txt]

Starts the server ``bench_http.py`` would (same settings, stores and seed data), warms
it up for 2 s, then drives it from ``bench_http.py``'s load process and reads the server
process's CPU time (user and system, all threads) from ``/proc`` around each
measurement: requests per second, p50/p99, and milliseconds of server CPU per request
(per place-and-read pair for ``ryw``). ``--env`` passes settings to the server. With
``--py-spy OUT`` (py-spy on the PATH) the last round is also sampled, as collapsed
stacks.

To compare two versions of the code, run it alternately from each checkout with its own
source first on the path, e.g.::

    PYTHONPATH=/other/checkout/src .venv/bin/python /other/checkout/bench/bench_server_cpu.py
    PYTHONPATH=src .venv/bin/python bench/bench_server_cpu.py

Linux only (``/proc``); writes nothing but the optional profile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_http as http

TICKS = os.sysconf("SC_CLK_TCK")
WARMUP_SECONDS = 2.0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process ``pid`` so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS  # utime, stime


def spec_for(
    server: http.Server, args: argparse.Namespace, token: str, seconds: float
) -> dict[str, Any]:
    return {
        "url": server.url,
        "op": args.op,
        "clients": args.clients,
        "seconds": seconds,
        "token": token,
        "customers": server.customers,
        "products": server.products,
        "orders": server.orders,
        "seed": 1,
        "load_client": "raw",
    }


def measure(args: argparse.Namespace, server: http.Server, token: str) -> list[dict[str, Any]]:
    assert server.process is not None
    pid = server.process.pid
    load = http.LoadGenerator()
    rows: list[dict[str, Any]] = []
    try:
        load.run(spec_for(server, args, token, WARMUP_SECONDS))
        for round_no in range(1, args.rounds + 1):
            spy = None
            if args.py_spy and round_no == args.rounds:
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "-p",
                        str(pid),
                        "-o",
                        args.py_spy,
                        "-f",
                        "raw",
                        "-r",
                        "400",
                        "-d",
                        str(int(args.seconds) + 1),
                        "--threads",
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            user0, sys0 = cpu_seconds(pid)
            started = time.monotonic()
            result = load.run(spec_for(server, args, token, args.seconds))
            elapsed = time.monotonic() - started
            user1, sys1 = cpu_seconds(pid)
            if spy is not None:
                spy.wait()
            done = result["per_s"] * elapsed
            row = {
                "round": round_no,
                "per_s": result["per_s"],
                "p50_ms": result["p50_ms"],
                "p99_ms": result["p99_ms"],
                "user_cores": (user1 - user0) / elapsed,
                "system_cores": (sys1 - sys0) / elapsed,
                "cpu_ms_per_request": 1000 * (user1 - user0 + sys1 - sys0) / done if done else None,
            }
            rows.append(row)
            print(
                f"  round {round_no}: {row['per_s']:8.1f}/s  p50 {row['p50_ms']:6.2f} ms  "
                f"p99 {row['p99_ms']:7.2f} ms  server CPU {row['user_cores']:.2f} user + "
                f"{row['system_cores']:.2f} system cores, "
                f"{row['cpu_ms_per_request'] or 0:.3f} ms per request",
                flush=True,
            )
    finally:
        load.close()
    return rows


async def run(args: argparse.Namespace) -> None:
    stores = http.Stores(args.url, args.redis_url)
    tmp = Path(tempfile.mkdtemp(prefix="cqrskit-bench-cpu-"))
    [server] = http.make_servers([args.target], stores, tmp)
    for setting in args.env:
        name, _, value = setting.partition("=")
        server.env[name] = value
    from orders.auth import Role, TokenService

    token = TokenService(http.SECRET).issue("staff", Role.STAFF)
    try:
        server.start()
        await asyncio.to_thread(server.wait_ready)
        await http.seed(server, token)
        rows = await asyncio.to_thread(measure, args, server, token)
    finally:
        server.stop()
        await stores.drop(redis=args.target.startswith("postgres"))
        shutil.rmtree(tmp, ignore_errors=True)
    cpu = [r["cpu_ms_per_request"] for r in rows if r["cpu_ms_per_request"] is not None]
    print(
        f"{args.target} {args.op} at {args.clients} clients, median of {len(rows)} rounds: "
        f"{statistics.median(r['per_s'] for r in rows):.1f}/s, "
        f"p99 {statistics.median(r['p99_ms'] for r in rows):.2f} ms, "
        f"{statistics.median(cpu):.3f} ms of server CPU per request"
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--target", choices=("sqlite", "postgres", "crud"), default="sqlite")
    parser.add_argument("--op", choices=("place", "get", "ryw"), default="place")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    parser.add_argument("--py-spy", metavar="OUT", help="sample the last round into OUT")
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "CQRSKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("CQRSKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    args = parser.parse_args()
    if args.py_spy and shutil.which("py-spy") is None:
        parser.error("--py-spy needs py-spy on the PATH (pip install py-spy)")
    if any("=" not in setting for setting in args.env):
        parser.error("--env takes KEY=VALUE")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(run(arguments())))
