"""App wiring: the services a composition root builds, the lifespan that opens them, and
the dependencies that hand them to routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from cqrskit.bus import CommandBus, QueryBus
from cqrskit.consistency import CheckpointWaiter
from cqrskit.fastapi._problems import Problem, problem_response
from cqrskit.projection import ProjectionRunner

__all__ = [
    "CommandBusDep",
    "CqrsServices",
    "QueryBusDep",
    "ServicesDep",
    "app_services",
    "cqrs_lifespan",
    "get_command_bus",
    "get_query_bus",
    "get_services",
    "install_health",
]

_STATE_KEY = "cqrs_services"


@dataclass(frozen=True, kw_only=True)
class CqrsServices:
    """What a service's composition root opens for its HTTP app.

    - ``command_bus`` / ``query_bus``: where routes send commands and queries;
    - ``waiters``: the read store each projection commits to, by projection name, for
      read-your-writes; ``default_waiter`` serves projections not named there;
    - ``runner``: the projection runner, when this process runs projections;
    - ``consistency_timeout``: how long a query with a ``Consistency-Token`` waits, at most,
      for its projections (seconds; a route may override it);
    - ``readiness``: an async check for ``GET /ready`` (none means always ready).
    """

    command_bus: CommandBus
    query_bus: QueryBus
    waiters: Mapping[str, CheckpointWaiter] = field(default_factory=dict)
    default_waiter: CheckpointWaiter | None = None
    runner: ProjectionRunner | None = None
    consistency_timeout: float = 2.0
    readiness: Callable[[], Awaitable[bool]] | None = None

    def waiter_for(self, projection: str) -> CheckpointWaiter:
        """The read store to wait on for ``projection``; ``LookupError`` if there is none."""
        waiter = self.waiters.get(projection, self.default_waiter)
        if waiter is None:
            raise LookupError(f"no checkpoint waiter for projection {projection!r}")
        return waiter

    async def ready(self) -> bool:
        """Whether the service can take traffic."""
        return True if self.readiness is None else await self.readiness()


def cqrs_lifespan(
    open_services: Callable[[], AbstractAsyncContextManager[CqrsServices]],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A FastAPI ``lifespan`` that opens the services on startup and closes them on shutdown.

    ``open_services`` returns an async context manager yielding the :class:`CqrsServices`
    (typically an ``@asynccontextmanager`` in the service's bootstrap module that opens the
    stores, starts the runner, and closes everything in reverse on exit). While the app
    runs, the services live on ``app.state``, one set per app: nothing global.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services() as services:
            setattr(app.state, _STATE_KEY, services)
            try:
                yield
            finally:
                # Requests after shutdown fail loudly instead of using closed stores.
                delattr(app.state, _STATE_KEY)

    return lifespan


def app_services(app: FastAPI) -> CqrsServices:
    """The :class:`CqrsServices` of a running ``app`` (opened by :func:`cqrs_lifespan`), for
    code outside requests such as tests; ``RuntimeError`` while they are not open."""
    services = getattr(app.state, _STATE_KEY, None)
    if not isinstance(services, CqrsServices):
        raise RuntimeError("the app's services are not open: create the app with cqrs_lifespan")
    return services


# The dependencies are coroutines although they never wait: FastAPI runs a plain function
# dependency in its thread pool, a thread hop (and GIL hand-over) on every request.


async def get_services(request: Request) -> CqrsServices:
    """Dependency: the app's :class:`CqrsServices` (opened by :func:`cqrs_lifespan`); outside
    a request, use :func:`app_services`."""
    return app_services(request.app)


async def get_command_bus(
    services: Annotated[CqrsServices, Depends(get_services)],
) -> CommandBus:
    """Dependency: the app's command bus."""
    return services.command_bus


async def get_query_bus(services: Annotated[CqrsServices, Depends(get_services)]) -> QueryBus:
    """Dependency: the app's query bus."""
    return services.query_bus


ServicesDep = Annotated[CqrsServices, Depends(get_services)]
"""A route parameter typed ``ServicesDep`` receives the app's :class:`CqrsServices`."""

CommandBusDep = Annotated[CommandBus, Depends(get_command_bus)]
"""A route parameter typed ``CommandBusDep`` receives the app's command bus."""

QueryBusDep = Annotated[QueryBus, Depends(get_query_bus)]
"""A route parameter typed ``QueryBusDep`` receives the app's query bus."""


def install_health(app: FastAPI, *, health: str = "/health", ready: str = "/ready") -> None:
    """Add ``GET /health`` (always 200 while the process serves) and ``GET /ready``
    (200 when :meth:`CqrsServices.ready`, else a 503 problem), outside the OpenAPI schema."""

    async def health_check() -> dict[str, str]:
        return {"status": "ok"}

    async def ready_check(services: ServicesDep) -> JSONResponse:
        if await services.ready():
            return JSONResponse({"status": "ready"})
        return problem_response(
            503,
            "The service is not ready to take traffic.",
            type="/problems/not-ready",
            instance=ready,
            headers={"Retry-After": "1"},
        )

    app.add_api_route(health, health_check, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        ready,
        ready_check,
        methods=["GET"],
        include_in_schema=False,
        responses={503: {"model": Problem}},
    )
