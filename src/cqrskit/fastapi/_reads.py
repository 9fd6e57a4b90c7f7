"""Queries over HTTP: read-your-writes with ``Consistency-Token``, ``Stale-Read`` when not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Header, Request, Response

from cqrskit.consistency import WaitResult, wait_for
from cqrskit.fastapi._commands import CONSISTENCY_TOKEN
from cqrskit.fastapi._problems import (
    STALE_READ,
    header_error,
    mark_stale_read,
    problem_responses,
)
from cqrskit.fastapi._services import app_services
from cqrskit.store.base import Position

__all__ = ["QUERY_RESPONSES", "STALE_READ", "ReadConsistency", "read_your_writes"]

_STALE_READ_HEADER: Final[dict[str, Any]] = {
    STALE_READ: {
        "description": "`true` when the read model had not reached the request's "
        "Consistency-Token in time: the answer may miss that write.",
        "schema": {"type": "string"},
    },
}

QUERY_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "The answer", "headers": _STALE_READ_HEADER},
    404: {**problem_responses(404)[404], "headers": _STALE_READ_HEADER},
    **problem_responses(422, 503),
}
"""OpenAPI ``responses=`` for a query route: the ``Stale-Read`` header and problems."""


@dataclass(frozen=True, slots=True)
class ReadConsistency:
    """What :func:`read_your_writes` found: ``stale`` is true when a projection was not
    caught up in time; ``waits`` holds one result per projection (empty without a token)."""

    stale: bool
    waits: tuple[WaitResult, ...] = ()


ReadYourWrites = Callable[..., Awaitable[ReadConsistency]]


def read_your_writes(*projections: str, timeout: float | None = None) -> ReadYourWrites:
    """A dependency that makes a query see the write named by its ``Consistency-Token``.

    When the request carries the header, it waits, event-driven and within one deadline
    (``timeout``, else :attr:`CqrsServices.consistency_timeout`), until every one of
    ``projections`` has passed the token. When time runs out the query still answers,
    with ``Stale-Read: true``, also when the answer is a problem about what the read
    model holds, such as a 404 (with :func:`install_problem_handlers`; see
    :func:`mark_stale_read`). A malformed token is a 422 problem naming the header;
    without the header nothing waits. Use it as a route dependency,
    ``Depends(read_your_writes("order_details"))``, in routes whose answers are built by
    FastAPI (a route returning its own ``Response`` must copy the header itself, from the
    returned :class:`ReadConsistency`).
    """
    if not projections:
        raise ValueError("name at least one projection to wait for")

    async def wait_until_read_model_has_write(
        request: Request,
        response: Response,
        consistency_token: Annotated[
            str | None,
            Header(
                alias=CONSISTENCY_TOKEN,
                description="From a command's answer: wait until the read model has it.",
            ),
        ] = None,
    ) -> ReadConsistency:
        if consistency_token is None:
            return ReadConsistency(stale=False)
        try:
            target = Position.parse(consistency_token)
        except ValueError:
            raise header_error(
                CONSISTENCY_TOKEN,
                "must be the Consistency-Token of a command's answer",
                consistency_token[:100],
            ) from None
        # Not a ServicesDep parameter: a query's dependencies are a good part of its CPU,
        # and the services are needed only when there is a token to wait for.
        services = app_services(request.app)
        limit = timeout if timeout is not None else services.consistency_timeout
        # Waiting in parallel shares one deadline among all the projections.
        waits = await asyncio.gather(
            *(wait_for(services.waiter_for(name), name, target, limit) for name in projections)
        )
        stale = not all(waits)
        if stale:
            response.headers[STALE_READ] = "true"
            mark_stale_read(request.scope)
        return ReadConsistency(stale=stale, waits=tuple(waits))

    return wait_until_read_model_has_write
