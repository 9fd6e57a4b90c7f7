"""The admin page's JSON endpoints (staff only): projections, parked events, event streams.

Each is a thin shell over :mod:`orders.operations`, which the CLI uses too. Retrying and
discarding work in this process against the read stores, so they work just as well when
the projections run in another process (``orders serve --api-only``).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Path, Query

from cqrskit.errors import EventDecodeError
from cqrskit.fastapi import problem_responses
from orders import operations
from orders.admin.schemas import AdminEvent, AdminParkedEvent, AdminProjection, DiscardBody
from orders.api import PREFIX, ServicesDep, Staff
from orders.bootstrap import Services

__all__ = ["HEALTH_CAP", "MAX_TAIL", "router"]

HEALTH_CAP: Final = 10_000
"""The page polls every second: counting a projection's backlog stops here ("10000+")."""

MAX_TAIL: Final = 200
"""The most events one tail request returns."""

router = APIRouter(prefix=f"{PREFIX}/admin", tags=["admin"])

READ = problem_responses(401, 403, 422, 503)
FOUND = problem_responses(401, 403, 404, 422, 503)

ProjectionName = Annotated[
    str, Path(max_length=100, description="A projection's name, e.g. `order_details`.")
]
ParkedId = Annotated[
    str, Path(max_length=100, description="A parked event's id, as the parked list gives it.")
]


def _user(caller: Staff) -> str:
    """Who did it, for the log that records retries and discards."""
    return f"{caller.role}:{caller.subject}"


def _known(services: Services, name: str) -> str:
    if name not in services.read_stores:
        raise HTTPException(
            404, f"no projection {name!r} (there are: {', '.join(services.read_stores)})"
        )
    return name


@router.get("/projections", response_model=list[AdminProjection], responses=READ)
async def admin_projections(services: ServicesDep, caller: Staff) -> list[AdminProjection]:
    """Every projection's state, version, checkpoint, lag, parked count, last error,
    holder and rebuild progress, wherever its runner runs."""
    health = await operations.projection_health(services, cap=HEALTH_CAP)
    return [AdminProjection.of(h) for h in health]


@router.get("/projections/{name}/parked", response_model=list[AdminParkedEvent], responses=FOUND)
async def admin_parked(
    name: ProjectionName, services: ServicesDep, caller: Staff
) -> list[AdminParkedEvent]:
    """The events a projection parked, oldest first."""
    parked = await operations.parked_events(services, _known(services, name))
    return [AdminParkedEvent.of(p) for p in parked]


@router.post(
    "/projections/{name}/parked/{parked_id}/retry",
    response_model=AdminParkedEvent,
    responses={
        **FOUND,
        **problem_responses(409),
        200: {"description": "Applied and unparked: the event as it was parked."},
    },
)
async def admin_retry_parked(
    name: ProjectionName, parked_id: ParkedId, services: ServicesDep, caller: Staff
) -> AdminParkedEvent:
    """Handle a parked event again (after its cause was fixed); 409 when it fails again,
    in which case it stays parked with the new error."""
    try:
        (outcome,) = await operations.retry_parked(
            services, _known(services, name), [parked_id], _user(caller)
        )
    except operations.OperationError as exc:
        raise HTTPException(404, str(exc)) from None
    if outcome.error is not None:
        raise HTTPException(409, f"it failed again and stays parked: {outcome.error}")
    return AdminParkedEvent.of(outcome.parked)


@router.post(
    "/projections/{name}/parked/{parked_id}/discard",
    response_model=AdminParkedEvent,
    responses={**FOUND, 200: {"description": "Discarded: the event as it was parked."}},
)
async def admin_discard_parked(
    name: ProjectionName,
    parked_id: ParkedId,
    body: DiscardBody,
    services: ServicesDep,
    caller: Staff,
) -> AdminParkedEvent:
    """Drop a parked event for good; the reason and who gave it are logged."""
    try:
        parked = await operations.discard_parked(
            services, _known(services, name), parked_id, body.reason, _user(caller)
        )
    except operations.OperationError as exc:
        raise HTTPException(404, str(exc)) from None
    return AdminParkedEvent.of(parked)


@router.get(
    "/streams/{stream_id:path}",
    response_model=list[AdminEvent],
    responses={**FOUND, **problem_responses(409)},
)
async def admin_stream(
    stream_id: Annotated[
        str, Path(max_length=1000, description="A stream id, e.g. `Order-<uuid>`.")
    ],
    services: ServicesDep,
    caller: Staff,
) -> list[AdminEvent]:
    """Every event of one stream, in version order; 409 when one can no longer be decoded
    (the projections park it: see the parked events)."""
    try:
        events = await operations.stream_events(services, stream_id)
    except operations.OperationError as exc:
        raise HTTPException(404, str(exc)) from None
    except EventDecodeError as exc:
        raise HTTPException(
            409, f"the stream holds an event that cannot be decoded: {exc}"
        ) from None
    except ValueError as exc:  # the store refuses ids no stream can have (NUL, too long)
        raise HTTPException(422, f"not a stream id: {exc}") from None
    return [AdminEvent.model_validate(operations.describe_event(e)) for e in events]


@router.get("/events", response_model=list[AdminEvent], responses=READ)
async def admin_latest_events(
    services: ServicesDep,
    caller: Staff,
    limit: Annotated[int, Query(ge=1, le=MAX_TAIL, description="How many events.")] = 25,
) -> list[AdminEvent]:
    """The latest events of every stream, oldest first."""
    events = await operations.latest_events(services, limit)
    return [AdminEvent.model_validate(operations.describe_event(e)) for e in events]
