"""The ``orders`` command: run the service, fill it with a demo, issue tokens, and operate
it (projections, parked events, event streams), beside a running service."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.json import JSON
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table
from rich.text import Text

from cqrskit.errors import StoreOptionError
from cqrskit.store.base import START, Position
from orders.auth import Role
from orders.logs import configure_logging
from orders.settings import Settings

if TYPE_CHECKING:
    from cqrskit.readstore.base import ParkedEvent
    from orders.bootstrap import Services

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="orders",
    help="The Orders reference service of cqrskit: an event-sourced shop behind a FastAPI API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)
log = logging.getLogger("orders")


def _fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """Settings from the environment, with logging configured from them (every command
    logs alike); a bad value is a one-line error and exit code 2."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "ORDERS_" + "_".join(str(p) for p in first["loc"]).upper()
        message = str(first["msg"]).removeprefix("Value error, ")
        _fail(f"{name}: {message} (got {first.get('input')!r})", code=2)
    configure_logging(settings.log_level, settings.log_format)
    return settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [ORDERS_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [ORDERS_PORT].")] = None,
    api_only: Annotated[
        bool, typer.Option("--api-only", help="Serve HTTP only; projections run elsewhere.")
    ] = False,
    runner_only: Annotated[
        bool, typer.Option("--runner-only", help="Run the projections only; no HTTP.")
    ] = False,
) -> None:
    """Run the HTTP API and the projection runner (in one process by default).

    On PostgreSQL, start several `--api-only` processes and several `--runner-only` ones:
    one runner is active per projection, another takes over when it dies. SIGTERM shuts
    down gracefully: requests in flight finish, the runner's batch commits or rolls back.
    """
    if api_only and runner_only:
        _fail("--api-only and --runner-only exclude each other", code=2)
    settings = load_settings()
    if host is not None:
        settings.host = host
    if port is not None:
        if not 1 <= port <= 65535:
            _fail(f"--port must be between 1 and 65535, not {port}", code=2)
        settings.port = port
    if runner_only:
        _on_stores(_run_projections(settings))
        return
    # The app opens its stores in its lifespan, where a failure reaches uvicorn's log as
    # a traceback: open them once before, so that a bad URL or a store that is down is
    # one line and an exit code, as from every other command.
    _on_stores(_open_and_close(settings))

    import uvicorn

    from orders.api import create_app

    base = f"http://{settings.host}:{settings.port}"
    if settings.log_format == "json":
        # Every line of a JSON-logging process is a JSON object: no banner.
        log.info("orders on %s", base, extra={"url": base, "events": settings.events_url})
    else:
        console.print(
            f"[bold]orders[/] on {base}  (events: {settings.events_url})\n"
            f"  OpenAPI page: {base}/docs\n"
            f"  admin page:   {base}/admin\n"
            "  a staff token: orders token --staff\n"
            f"  sample data:   orders demo --url {base}",
            highlight=False,
        )
    uvicorn.run(
        create_app(settings, run_projections=not api_only),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's loggers propagate to ours (configure_logging)
        timeout_graceful_shutdown=30,
    )


async def _open_and_close(settings: Settings) -> None:
    from orders.bootstrap import open_services

    async with open_services(settings, run_projections=False):
        pass


async def _run_projections(settings: Settings) -> None:
    from orders.bootstrap import open_services

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_services(settings, run_projections=True):
        log.info("projection runner started; Ctrl-C or SIGTERM stops it")
        await stop.wait()
    log.info("projection runner stopped")


@app.command()
def token(
    staff: Annotated[bool, typer.Option("--staff", help="A token for a staff member.")] = False,
    customer: Annotated[
        str | None, typer.Option("--customer", help="A token for this customer id.")
    ] = None,
    hours: Annotated[float, typer.Option(help="How long the token is valid.", min=0.01)] = 24,
) -> None:
    """Print a bearer token for local use (signed with ORDERS_JWT_SECRET or the secret
    kept in the data dir)."""
    if staff == (customer is not None):
        _fail("say either --staff or --customer ID", code=2)
    from orders.bootstrap import token_service

    tokens = token_service(load_settings())
    try:
        if staff:
            printed = tokens.issue("staff", Role.STAFF, ttl=hours * 3600)
        else:
            assert customer is not None
            printed = tokens.issue(customer, Role.CUSTOMER, ttl=hours * 3600)
    except ValueError:
        _fail(f"--customer must be a customer id (a UUID), not {customer!r}", code=2)
    print(printed)


@app.command()
def demo(
    url: Annotated[
        str | None, typer.Option(help="The running service (default: ORDERS_HOST/PORT).")
    ] = None,
    orders_count: Annotated[
        int, typer.Option("--orders", help="How many orders to place.", min=1, max=10_000)
    ] = 40,
) -> None:
    """Fill a running service with sample customers, products and orders, then print
    what to try next."""
    from orders.bootstrap import token_service
    from orders.demo import run_demo

    settings = load_settings()
    base = url or f"http://{settings.host}:{settings.port}"
    staff_token = token_service(settings).issue("staff", Role.STAFF)
    try:
        asyncio.run(run_demo(base, staff_token, orders_count, console))
    except ConnectionError as exc:
        _fail(f"{exc}; start the service first (make run, or orders serve)")


# -- operating a running service ---------------------------------------------------------

projections_app = typer.Typer(
    help="Check the projections of a running service; retry or discard parked events; "
    "rebuild a read model.",
    no_args_is_help=True,
)
events_app = typer.Typer(
    help="Read the event store of a running service: one stream, or the live feed.",
    no_args_is_help=True,
)
app.add_typer(projections_app, name="projections")
app.add_typer(events_app, name="events")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ProjectionName = Annotated[str, typer.Argument(help="The projection, e.g. order_details.")]


def _operate(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``work`` on the service's stores (opened beside the running service)."""
    from orders.operations import OperationError, open_stores

    async def run() -> T:
        async with open_stores(settings) as services:
            return await work(services)

    try:
        return _on_stores(run())
    except OperationError as exc:
        _fail(str(exc))


def _on_stores(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``, which opens the stores: a store it cannot use is one line and exit
    code 2 (a bad option) or 1 (unreachable), never a traceback."""
    try:
        return asyncio.run(work)
    except StoreOptionError as exc:
        _fail(str(exc), code=2)
    except TimeoutError:
        raise  # an OSError too, but the command's own deadline: it says what ran out
    except OSError as exc:
        _fail(f"cannot reach the stores: {exc}")


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _shorten(text: str, width: int) -> str:
    # A table row stays a line or two; --json (and `parked`) show the whole error.
    return text if len(text) <= width else text[: width - 1] + "…"


def _age(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}min"


@projections_app.command("status")
def projections_status(as_json: JsonFlag = False) -> None:
    """Show every projection: version, state, checkpoint, how far behind, parked events,
    last error and the process holding it. Exit code 1 when one is faulted."""
    from orders.operations import REPORT_STALE_AFTER, projection_health

    healths = _operate(load_settings(), projection_health)
    if as_json:
        _print_json([h.as_json() for h in healths])
    else:
        table = Table(
            Column("projection", no_wrap=True),
            "version",
            Column("state", no_wrap=True),
            "checkpoint",
            "behind",
            "secs behind",
            "parked",
            Column("last error", overflow="fold"),
            Column("holder", no_wrap=True),
            title="projections",
        )
        for h in healths:
            state = h.state
            if h.stale and h.report_age is not None:
                state = f"{state}? {_age(h.report_age)} ago"
            if h.rebuild and not h.rebuild.get("finished"):
                state += f" rebuilding v{h.rebuild.get('version')}"
            style = "red" if h.faulted else "yellow" if h.stale or h.parked else ""
            behind = "-" if h.events_behind is None else str(h.events_behind)
            table.add_row(
                h.name,
                "-" if h.version is None else str(h.version),
                state,
                h.checkpoint or "-",
                behind + ("+" if h.behind_capped else ""),
                "-" if h.seconds_behind is None else f"{h.seconds_behind:.1f}",
                str(h.parked),
                Text(_shorten(h.last_error or "-", 60)),
                Text(h.holder or "-"),
                style=style,
            )
        console.print(table)
        if any(h.report_age is None for h in healths):
            console.print(
                "state, last error and holder are known to the runner only; it has "
                "published no status (state unknown)",
                style="dim",
            )
        elif any(h.stale for h in healths):
            console.print(
                f"'?': the runner's status is older than {REPORT_STALE_AFTER:.0f}s: "
                "is it still running?",
                style="dim",
            )
    if any(h.faulted for h in healths):
        raise typer.Exit(1)


@projections_app.command("parked")
def projections_parked(name: ProjectionName, as_json: JsonFlag = False) -> None:
    """List the events a projection parked (could not handle), with their errors."""
    from orders.operations import parked_events

    parked = _operate(load_settings(), lambda services: parked_events(services, name))
    if as_json:
        _print_json([_parked_json(p) for p in parked])
        return
    if not parked:
        console.print(f"{name}: no parked events")
        return
    # Ids and streams are copied into the next command: folded, never cut short.
    table = Table(
        Column("id", no_wrap=True),
        Column("stream", overflow="fold"),
        "version",
        Column("type", overflow="fold"),
        "attempts",
        "parked at (UTC)",
        Column("error", overflow="fold", ratio=1),
        title=f"{name}: parked events",
    )
    for p in parked:
        table.add_row(
            p.id,
            Text(p.stream_id),
            str(p.stream_version),
            Text(p.event_type),
            str(p.attempts),
            p.parked_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            Text(p.error),
        )
    console.print(table)


def _parked_json(parked: ParkedEvent) -> dict[str, Any]:
    return {
        "id": parked.id,
        "projection": parked.projection,
        "version": parked.version,
        "stream_id": parked.stream_id,
        "stream_version": parked.stream_version,
        "event_type": parked.event_type,
        "attempts": parked.attempts,
        "parked_at": parked.parked_at.isoformat(),
        "error": parked.error,
    }


@projections_app.command("retry")
def projections_retry(
    name: ProjectionName,
    parked_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="The parked event's id (see parked).")
    ] = None,
    retry_all: Annotated[bool, typer.Option("--all", help="Retry every parked event.")] = False,
) -> None:
    """Handle parked events again once their cause is fixed: each is applied and unparked
    in one transaction, or stays parked. Exit code 1 when one fails again."""
    from orders.operations import retry_parked

    if (parked_id is None) == (not retry_all):
        _fail("say either ID or --all", code=2)
    ids = None if retry_all else [str(parked_id)]
    outcomes = _operate(load_settings(), lambda s: retry_parked(s, name, ids, _operator()))
    if not outcomes:
        console.print(f"{name}: no parked events")
    for outcome in outcomes:
        p = outcome.parked
        what = f"{p.id} ({p.event_type} in {p.stream_id} v{p.stream_version})"
        if outcome.error is None:
            console.print(escape(f"{name}: retried {what}: applied and unparked"), highlight=False)
        else:
            errors.print(
                escape(f"{name}: {what} failed again, still parked: {outcome.error}"),
                highlight=False,
                soft_wrap=True,
            )
    if any(o.error is not None for o in outcomes):
        raise typer.Exit(1)


@projections_app.command("discard")
def projections_discard(
    name: ProjectionName,
    parked_id: Annotated[str, typer.Argument(metavar="ID", help="The parked event's id.")],
    reason: Annotated[str, typer.Option(help="Why it is dropped (written to the log).")],
) -> None:
    """Drop a parked event for good, without handling it; the reason and who did it are
    logged."""
    from orders.operations import discard_parked

    user = _operator()
    p = _operate(load_settings(), lambda s: discard_parked(s, name, parked_id, reason, user))
    console.print(
        escape(
            f"{name}: discarded {p.id} ({p.event_type} in {p.stream_id} v{p.stream_version}) "
            f"by {user}: {reason}"
        ),
        highlight=False,
    )


@projections_app.command("rebuild")
def projections_rebuild(
    name: ProjectionName,
    timeout: Annotated[
        float, typer.Option(help="Stop following after this many seconds.", min=0.1)
    ] = 3600,
) -> None:
    """Ask the runner to rebuild a read model beside the live one, follow its progress,
    and print the new live version once readers use it."""
    from orders.operations import (
        REPORT_STALE_AFTER,
        published_reports,
        request_rebuild,
        watch_rebuild,
    )
    from orders.operations import report_age as with_report_age

    async def rebuild(services: Services) -> int | None:
        replaced = await request_rebuild(services, name)
        console.print(f"{name}: rebuild of v{replaced} requested", highlight=False)
        report = (await published_reports(services)).get(name)
        if report is None or with_report_age(report) > REPORT_STALE_AFTER:
            errors.print(
                f"{name}: no runner has reported holding it lately; the rebuild starts "
                "when one does",
                highlight=False,
            )
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8.0f} events/s"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(f"{name}: waiting for the runner", total=None, rate=0.0)
            async with asyncio.timeout(timeout):
                async for step in watch_rebuild(services, name, replaced):
                    if step.progress is not None:
                        bar.update(
                            task,
                            description=f"{name} v{step.progress.get('version')}",
                            completed=int(step.progress.get("done", 0)),
                            total=int(step.progress.get("total", 0)) or None,
                            rate=float(step.progress.get("rate", 0.0)),
                        )
                    if step.finished:
                        return step.live_version
        return None

    try:
        live = _operate(load_settings(), rebuild)
    except TimeoutError:
        _fail(f"{name}: the rebuild did not finish in {timeout:g}s (it goes on in the runner)")
    console.print(f"{name}: v{live} is live", highlight=False)


@events_app.command("show")
def events_show(
    stream: Annotated[str, typer.Argument(help="The stream id, e.g. Order-<uuid>.")],
    as_json: JsonFlag = False,
) -> None:
    """Show every event of a stream: version, position, type, time, correlation and
    causation ids, user and payload."""
    from orders.operations import describe_event, stream_events

    events = _operate(load_settings(), lambda services: stream_events(services, stream))
    described = [describe_event(e) for e in events]
    if as_json:
        _print_json(described)
        return
    for event in described:
        console.rule(
            f"{escape(event['stream_id'])} v{event['version']}  [bold]{escape(event['type'])}[/]",
            align="left",
        )
        fields = Table.grid(padding=(0, 2))
        for label, key in (
            ("position", "position"),
            ("recorded", "recorded_at"),
            ("message", "message_id"),
            ("correlation", "correlation_id"),
            ("causation", "causation_id"),
            ("user", "user_id"),
        ):
            fields.add_row(label, Text(str(event[key] or "-")))
        if "undecodable" in event:
            fields.add_row("undecodable", Text(event["undecodable"]), style="red")
        console.print(fields, highlight=False)
        console.print(JSON.from_data(event["payload"]))


@events_app.command("tail")
def events_tail(
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only events of this type (repeat for several)."),
    ] = None,
    from_position: Annotated[
        str | None, typer.Option("--from", help="Start after this position (a token).")
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Start at the first event.")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Stop after this many events.", min=1)] = None,
) -> None:
    """Follow the global event feed live, one line per event (position, time, stream,
    type, payload), from now on by default, until Ctrl-C or SIGTERM."""
    from orders.operations import EVENT_TYPES, describe_event, follow_events

    if from_position is not None and from_start:
        _fail("--from and --from-start exclude each other", code=2)
    unknown = sorted(set(types or ()) - set(EVENT_TYPES))
    if unknown:
        _fail(f"unknown event type {unknown[0]!r} (there are: {', '.join(EVENT_TYPES)})", code=2)
    start: Position | None = START if from_start else None
    if from_position is not None:
        try:
            start = Position.parse(from_position)
        except ValueError as exc:
            _fail(f"--from: {exc}", code=2)

    async def tail(services: Services) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        after = start if start is not None else await services.event_store.head()
        errors.print(f"following events after position {after}; Ctrl-C stops", highlight=False)
        seen = 0
        wanted = frozenset(types) if types else None
        async for recorded in follow_events(services.event_store, after, wanted, stop):
            event = describe_event(recorded)
            line = Text.assemble(
                (f"{event['position']:>8}", "bold"),
                "  ",
                (recorded.recorded_at.isoformat(timespec="milliseconds"), "dim"),
                "  ",
                event["stream_id"],
                "  ",
                (event["type"], "cyan"),
                "  ",
                json.dumps(event["payload"], separators=(",", ":"), default=str),
            )
            console.print(line, soft_wrap=True, highlight=False)
            seen += 1
            if limit is not None and seen >= limit:
                return

    _operate(load_settings(), tail)


def main() -> None:
    """Entry point of the ``orders`` script."""
    app()


@app.command()
def verify(
    projection: Annotated[
        str | None,
        typer.Option("--projection", help="Verify this read model only (no invariants)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Check, beside a running service, that every read model equals a rebuild from the
    events and that the write side's invariants hold. Exit code 0: no differences, 1:
    differences found, 2: could not verify."""
    from orders.verify import run_verify

    raise typer.Exit(run_verify(load_settings(), projection, json_output=as_json))
