"""The benchmark plots in docs/bench/, drawn from the results JSON in bench/results/.

    .venv/bin/python bench/plots.py      # redraw every plot whose results file exists

bench_http.py and bench_search.py draw their own plots after a run (through this module);
``make bench`` runs this script last, to draw compare.py's writer-count plot. Needs
matplotlib (the ``bench`` extra); the Agg backend, so no display is needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
from matplotlib.ticker import FuncFormatter

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "bench"
COLOURS = {
    "sqlite": "tab:blue",
    "postgres": "tab:green",
    "postgres-split": "tab:olive",
    "crud": "tab:gray",
    "cqrskit": "tab:blue",
    "eventsourcing": "tab:orange",
    "raw": "tab:gray",
}
HTTP_LABELS = {
    "sqlite": "cqrskit, embedded SQLite",
    "postgres": "cqrskit, PostgreSQL + Redis",
    "postgres-split": "cqrskit, PostgreSQL + Redis, runner in a 2nd process",
    "crud": "CRUD, FastAPI + asyncpg (PostgreSQL)",
}
OPS = {"place": "PlaceOrder (POST /orders)", "get": "GetOrder (GET /orders/{id})"}


def _save(fig: Any, name: str) -> Path:
    DOCS.mkdir(parents=True, exist_ok=True)
    path = DOCS / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _when(results: dict[str, Any]) -> str:
    load = results.get("machine", {}).get("load_average_1m", {})
    extra = f", 1-min load {load.get('before')}-{load.get('after')}" if load else ""
    return f"run of {results.get('when', '?')[:16].replace('T', ' ')} UTC{extra}"


def http_plots(results: dict[str, Any]) -> list[Path]:
    """Throughput against client count, and latency distributions, per server."""
    rows, runs = results["results"], results["runs"]
    targets = list(results["settings"]["targets"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, op in zip(axes, OPS, strict=True):
        for target in targets:
            mine = sorted(
                (r for r in rows if (r["op"], r["target"]) == (op, target)),
                key=lambda r: r["clients"],
            )
            xs = [r["clients"] for r in mine]
            ax.plot(
                xs,
                [r["per_s"] for r in mine],
                "o-",
                color=COLOURS[target],
                label=HTTP_LABELS[target],
            )
            ax.fill_between(
                xs,
                [min(r["rounds_per_s"]) for r in mine],
                [max(r["rounds_per_s"]) for r in mine],
                color=COLOURS[target],
                alpha=0.15,
                linewidth=0,
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(
            results["settings"]["clients"], [str(n) for n in results["settings"]["clients"]]
        )
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("requests/s (median; band: min-max of rounds)")
        ax.set_title(OPS[op])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"HTTP throughput, one uvicorn worker each ({_when(results)})", fontsize=10)
    paths = [_save(fig, "http_throughput.png")]

    panels = [("place", 32), ("get", 32), ("ryw", 8)]
    titles = {
        "place": "PlaceOrder latency, 32 clients",
        "get": "GetOrder latency, 32 clients",
        "ryw": "read-your-writes, 8 clients\n(command answer -> query answer with token)",
    }
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, (op, clients) in zip(axes, panels, strict=True):
        for target in targets:
            values = sorted(
                v
                for r in runs
                if (r["op"], r["clients"], r["target"]) == (op, clients, target)
                for v in r.get("latencies_ms", [])
            )
            if not values:
                continue
            share = [(i + 1) / len(values) for i in range(len(values))]
            ax.plot(values, share, color=COLOURS[target], label=HTTP_LABELS[target])
        for q in (0.5, 0.99):
            ax.axhline(q, color="black", linewidth=0.6, linestyle=":")
        if op == "ryw":
            ax.axvline(20, color="red", linewidth=0.8, linestyle="--", label="goal: p99 <= 20 ms")
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (log scale)")
        ax.set_ylabel("share of requests answered within")
        ax.set_title(titles[op], fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8, loc="upper left")
    axes[2].legend(fontsize=8, loc="upper left")
    fig.suptitle(
        f"Latency distributions, every round pooled ({_when(results)})", fontsize=10, y=1.06
    )
    paths.append(_save(fig, "http_latency.png"))
    return paths


def search_plots(results: dict[str, Any]) -> list[Path]:
    """p50 and p95 of each query, per database, against the 50 ms goal."""
    rows = results["results"]
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    queries = list(dict.fromkeys(r["query"] for r in rows))
    fig, ax = plt.subplots(figsize=(11, 4.6))
    width = 0.8 / len(backends)
    colours = {"sqlite": "tab:blue", "postgres": "tab:green"}
    for b, backend in enumerate(backends):
        by_query = {r["query"]: r for r in rows if r["backend"] == backend}
        xs = [q + (b - (len(backends) - 1) / 2) * width for q in range(len(queries))]
        ax.bar(
            xs,
            [by_query[q]["p95_ms"] for q in queries],
            width * 0.9,
            color=colours.get(backend, "tab:gray"),
            alpha=0.35,
            label=f"{backend} p95",
        )
        ax.bar(
            xs,
            [by_query[q]["p50_ms"] for q in queries],
            width * 0.9,
            color=colours.get(backend, "tab:gray"),
            label=f"{backend} p50",
        )
    ax.axhline(50, color="red", linestyle="--", linewidth=0.8, label="goal: p95 <= 50 ms")
    ax.set_xticks(range(len(queries)), queries, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("ms per search (page + total count)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=8, ncol=3)
    ax.set_title(
        f"order_search with {results['settings']['orders']:,} orders ({_when(results)})",
        fontsize=10,
    )
    return [_save(fig, "search_latency.png")]


def compare_plots(results: dict[str, Any]) -> list[Path]:
    """compare.py: single-event appends/s against the number of writers, per backend."""
    rows = [r for r in results["results"] if r["scenario"].startswith("single-event appends")]
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    fig, axes = plt.subplots(1, len(backends), figsize=(5.5 * len(backends), 4.2))
    axes = [axes] if len(backends) == 1 else list(axes)
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    for ax, backend in zip(axes, backends, strict=True):
        mine = sorted(
            (r for r in rows if r["backend"] == backend),
            key=lambda r: int(r["scenario"].split(", ")[1].split()[0]),
        )
        writers = [int(r["scenario"].split(", ")[1].split()[0]) for r in mine]
        for side in ("cqrskit", "eventsourcing", "raw"):
            label = {"raw": "raw driver loop (limit)", "eventsourcing": results.get("peer", side)}
            ax.plot(
                writers,
                [r["events_per_s"][side] for r in mine],
                marker="o",
                color=COLOURS[side],
                label=label.get(side, side),
                linestyle="--" if side == "raw" else "-",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(writers, [str(w) for w in writers])
        ax.set_xlabel("concurrent writers")
        ax.set_ylabel("single-event appends/s (median of rounds)")
        ax.set_title(names.get(backend, backend))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"bench/compare.py: appends against writers ({_when(results)})", fontsize=10)
    return [_save(fig, "compare_writers.png")]


def projection_plots(results: dict[str, Any]) -> list[Path]:
    """bench_projections.py: rebuild time and peak memory against events, both runners."""
    if not results["rebuild"]:
        return []  # a latency-only run: keep the plot of the last rebuilds
    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    sides = {"cqrskit": results["rebuild"], "eventsourcing": results.get("peer_rebuild", {})}
    databases = {"sqlite": ("SQLite", "-"), "postgresql": ("PostgreSQL", "--")}
    for side, rebuilds in sides.items():
        for database, (name, style) in databases.items():
            points = sorted(
                (int(key.split("/")[1]), run)
                for key, run in rebuilds.items()
                if key.startswith(f"{database}/")
            )
            if not points:
                continue
            events = [count for count, _ in points]
            label = f"{side}, {name}"
            for ax, field in ((time_ax, "seconds"), (memory_ax, "peak_rss_mb")):
                ax.plot(
                    events,
                    [run[field] for _, run in points],
                    marker="o",
                    color=COLOURS[side],
                    linestyle=style,
                    label=label,
                )
    time_ax.set_yscale("log")
    time_ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    time_ax.set_ylabel("rebuild time, s (log)")
    memory_ax.set_ylabel("peak RSS of the rebuild process, MB")
    memory_ax.set_ylim(bottom=0)
    sizes = sorted({int(key.split("/")[1]) for key in results["rebuild"]})
    for ax, where in ((time_ax, "lower right"), (memory_ax, "lower left")):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{size:,}" for size in sizes])
        ax.minorticks_off()
        ax.set_xlabel("stored events (log)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc=where)
    fig.suptitle(f"bench/bench_projections.py: rebuilds ({_when(results)})", fontsize=10)
    return [_save(fig, "projection_rebuilds.png")]


def main() -> None:
    for name, draw in (
        ("http.json", http_plots),
        ("search.json", search_plots),
        ("compare.json", compare_plots),
        ("projections.json", projection_plots),
    ):
        path = RESULTS / name
        if path.exists():
            for written in draw(json.loads(path.read_text())):
                print(f"wrote {written.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
