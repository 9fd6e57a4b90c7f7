"""The ``orders`` command: run the service, fill it with a demo, issue tokens."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from orders.auth import Role
from orders.settings import Settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="orders",
    help="The Orders reference service of cqrskit: an event-sourced shop behind a FastAPI API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """Settings from the environment; a bad value is a one-line error and exit code 2."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "ORDERS_" + "_".join(str(p) for p in first["loc"]).upper()
        message = str(first["msg"]).removeprefix("Value error, ")
        _fail(f"{name}: {message} (got {first.get('input')!r})", code=2)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


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
    _configure_logging(settings)
    if runner_only:
        asyncio.run(_run_projections(settings))
        return

    import uvicorn

    from orders.api import create_app

    base = f"http://{settings.host}:{settings.port}"
    console.print(
        f"[bold]orders[/] on {base}  (events: {settings.events_url})\n"
        f"  OpenAPI page: {base}/docs\n"
        "  a staff token: orders token --staff\n"
        f"  sample data:   orders demo --url {base}",
        highlight=False,
    )
    uvicorn.run(
        create_app(settings, run_projections=not api_only),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
    )


async def _run_projections(settings: Settings) -> None:
    from orders.bootstrap import open_services

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_services(settings, run_projections=True):
        console.print("[bold]orders[/] projection runner started; Ctrl-C or SIGTERM stops it")
        await stop.wait()
    console.print("projection runner stopped")


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


def main() -> None:
    """Entry point of the ``orders`` script."""
    app()
