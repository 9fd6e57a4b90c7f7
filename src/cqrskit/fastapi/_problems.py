"""Errors as RFC 9457 ``application/problem+json``, mapped once for the whole app."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

import asyncpg
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cqrskit.errors import (
    AggregateNotFound,
    ConcurrencyError,
    DomainError,
    EventStoreClosed,
    IdempotencyKeyReused,
    UnexpectedVersion,
)
from cqrskit.store.postgres import EventStoreConnectionLost

__all__ = [
    "DEFAULT_STATUSES",
    "PROBLEM_MEDIA_TYPE",
    "STALE_READ",
    "Problem",
    "document_problem",
    "header_error",
    "install_problem_handlers",
    "mark_stale_read",
    "problem_response",
    "problem_responses",
]

log = logging.getLogger("cqrskit.fastapi")

PROBLEM_MEDIA_TYPE = "application/problem+json"

STALE_READ: Final = "Stale-Read"

# Where a request's scope says that its read model was not confirmed caught up with its
# Consistency-Token (see mark_stale_read).
_STALE_STATE: Final = "cqrskit.stale_read"
# Problems that refuse a request for what it is, not for what a read model holds: a read
# model that caught up would answer them alike, so they never say Stale-Read (nor does a
# 5xx, which read nothing).
_REFUSED: Final = frozenset({400, 401, 403, 413, 422})
_STALE_DETAIL: Final = (
    "the read model had not reached the request's Consistency-Token in time, "
    "so this answer may change once it has"
)

_UNAVAILABLE = 503
_UNAVAILABLE_TYPES: tuple[type[Exception], ...] = (
    OSError,  # ConnectionError, ConnectionRefusedError, TimeoutError are all OSErrors
    EventStoreClosed,
    # An append whose connection broke: committed whole or not at all, the client cannot
    # know which, and repeating it with the same Idempotency-Key is safe either way.
    EventStoreConnectionLost,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

DEFAULT_STATUSES: Mapping[type[Exception], int] = {
    AggregateNotFound: 404,
    ConcurrencyError: 409,
    DomainError: 409,
    UnexpectedVersion: 412,
    IdempotencyKeyReused: 422,
    **dict.fromkeys(_UNAVAILABLE_TYPES, _UNAVAILABLE),
}
"""The exception classes :func:`install_problem_handlers` maps by default, to HTTP statuses.

A broken dependency (a refused connection, a closed store, a pool that ran out, an append
whose connection broke, a statement that timed out) is 503 with
``Retry-After``; anything not mapped is 500.
"""


class Problem(BaseModel):
    """The body of every error response (RFC 9457), for OpenAPI documentation.

    ``type`` is ``about:blank`` for plain HTTP errors (unknown route, 405, 401/403) and
    ``/problems/<kebab-case error class>`` otherwise (``/problems/aggregate-not-found``,
    ``/problems/validation-error``, ``/problems/out-of-stock`` for a service's
    ``OutOfStock`` domain error): a stable code clients can switch on. Validation problems
    add ``errors``; other members may be added by services.
    """

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    type: str = "about:blank",
    title: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """An ``application/problem+json`` response; ``title`` defaults to the status phrase."""
    body: dict[str, Any] = {
        "type": type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem+json answers for ``statuses``.

    The :class:`Problem` schema is given inline under ``application/problem+json``, the
    media type actually sent: FastAPI's ``model=`` would file it under
    ``application/json`` and leave the real one without a schema. A 401 documents its
    ``WWW-Authenticate`` header.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}},
        }
        if status == 401:
            response["headers"] = {
                "WWW-Authenticate": {
                    "description": "The authentication scheme to use (`Bearer`).",
                    "schema": {"type": "string"},
                }
            }
        responses[status] = response
    return responses


_PROBLEM_SCHEMA: Final[dict[str, Any]] = Problem.model_json_schema()

_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "The body could not be read as JSON",
    401: "No valid credentials: missing, malformed, expired or wrongly signed token",
    403: "The caller may not do this",
    404: "Not found",
    413: "The request body is larger than the service accepts",
    409: "Conflict: a business rule or a concurrent change refused the command",
    412: "The resource is no longer at the version given in If-Match",
    422: "The request is not valid, or its Idempotency-Key was used for another request",
    503: "A dependency is unavailable; retry after Retry-After seconds",
}


def document_problem(app: FastAPI, status: int, *, with_body_only: bool = True) -> None:
    """Document a problem answer ``status`` on every operation of ``app``'s OpenAPI (only
    those taking a request body, by default) that does not document it already.

    For answers any such route may give whatever its author listed: a body that is not
    JSON (400), or too large (413). Routes added later are covered too: the document is
    completed when it is first built.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        schema = build()
        if first:
            entry = problem_responses(status)[status]
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    if not isinstance(operation, dict) or "responses" not in operation:
                        continue
                    if with_body_only and "requestBody" not in operation:
                        continue
                    operation["responses"].setdefault(str(status), entry)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def header_error(header: str, message: str, value: str) -> RequestValidationError:
    """A 422 validation problem naming a request header (``header.<name>: <message>``)."""
    return RequestValidationError(
        [{"loc": ("header", header), "msg": message, "type": "value_error", "input": value}]
    )


def mark_stale_read(scope: Scope) -> None:
    """Say that the request's read model was not confirmed caught up with its
    ``Consistency-Token``: a problem answer to it (a 404 or another answer about what the
    read model holds, not a 401, 403, 422 or 5xx) then carries ``Stale-Read: true`` too.

    :func:`~cqrskit.fastapi.read_your_writes` calls it when its wait did not succeed."""
    scope.setdefault("state", {})[_STALE_STATE] = True


def _stale_read(scope: Scope, status: int) -> bool:
    state = scope.get("state")
    return (
        status < 500
        and status not in _REFUSED
        and isinstance(state, dict)
        and state.get(_STALE_STATE) is True
    )


def _stale_problem(
    detail: str | None, headers: Mapping[str, str] | None
) -> tuple[str, dict[str, str]]:
    said = f"{detail} ({_STALE_DETAIL})" if detail else f"Stale read: {_STALE_DETAIL}."
    return said, {**(headers or {}), STALE_READ: "true"}


def install_problem_handlers(
    app: FastAPI,
    extra_statuses: Mapping[type[Exception], int] | None = None,
    *,
    retry_after: int = 1,
) -> None:
    """Answer every error of ``app`` as ``application/problem+json``.

    Exceptions are mapped by the most specific class in their MRO found in
    :data:`DEFAULT_STATUSES` updated with ``extra_statuses`` (e.g. ``{OutOfStock: 422}``);
    the exception's message is the ``detail``. Unmapped exceptions are 500 with a generic
    detail (the traceback goes to the log, never to the client); 503 answers carry
    ``Retry-After: <retry_after>``. FastAPI's validation errors become 422 whose ``detail``
    names the failing fields, and ``HTTPException`` keeps its status, detail and headers.
    A problem answer to a query whose ``Consistency-Token`` wait did not succeed (see
    :func:`mark_stale_read`) carries ``Stale-Read: true`` and says so in its ``detail``.
    Call it before the app starts.
    """
    if app.middleware_stack is not None:
        raise RuntimeError("install_problem_handlers must be called before the app starts")
    statuses = {**DEFAULT_STATUSES, **(extra_statuses or {})}
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # FastAPI answers 400 for a body it cannot decode (not UTF-8, say): say so everywhere.
    document_problem(app, 400)
    # Innermost of the user middleware, so that every other middleware (metrics, CORS)
    # sees the problem response rather than an exception.
    app.user_middleware.append(
        Middleware(_ProblemMiddleware, statuses=statuses, retry_after=retry_after)
    )


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
        # FastAPI's "There was an error parsing the body" hides why (not UTF-8, an integer
        # of more than 4300 digits); the reason, never the body itself, helps the client.
        detail = f"body: not valid JSON: {str(exc.__cause__).split(';')[0][:200]}"
    extensions: dict[str, Any] = {}
    if detail is None and exc.detail is not None:
        extensions["errors"] = exc.detail  # FastAPI lets routes raise structured details
    headers = exc.headers
    if _stale_read(request.scope, exc.status_code):
        detail, headers = _stale_problem(detail, headers)
    return problem_response(
        exc.status_code,
        detail,
        instance=request.url.path,
        headers=headers,
        **extensions,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        # Only where and what: "input" may echo secrets, and "ctx" may hold exceptions.
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    return problem_response(
        422,
        "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors),
        type="/problems/validation-error",
        title="Request is not valid",
        instance=request.url.path,
        errors=errors,
    )


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()


def _status_for(exc: Exception, statuses: Mapping[type[Exception], int]) -> int:
    for cls in type(exc).__mro__:
        status = statuses.get(cls)
        if status is not None:
            return status
    return 500


def _problem_for(
    exc: Exception, scope: Scope, statuses: Mapping[type[Exception], int], retry_after: int
) -> JSONResponse:
    status = _status_for(exc, statuses)
    path = scope.get("path", "")
    if status >= 500:
        unavailable = status == _UNAVAILABLE
        log.log(
            logging.WARNING if unavailable else logging.ERROR,
            "%s %s: %s",
            status,
            path,
            type(exc).__name__,
            exc_info=exc,
        )
        return problem_response(
            status,
            "A service this API depends on is unavailable; try again later."
            if unavailable
            else "The server failed to handle the request.",
            type="/problems/service-unavailable" if unavailable else "/problems/internal-error",
            instance=path,
            headers={"Retry-After": str(retry_after)} if unavailable else None,
        )
    name = type(exc).__name__
    detail: str | None = str(exc)
    headers = None
    if _stale_read(scope, status):
        detail, headers = _stale_problem(detail, headers)
    return problem_response(
        status,
        detail,
        type=f"/problems/{_kebab(name)}",
        title=_kebab(name).replace("-", " ").capitalize(),
        instance=path,
        headers=headers,
    )


class _ProblemMiddleware:
    """Turns exceptions no handler took into problem responses (pure ASGI)."""

    def __init__(
        self, app: ASGIApp, *, statuses: Mapping[type[Exception], int], retry_after: int
    ) -> None:
        self.app = app
        self.statuses = statuses
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A state dict of the request's own, so that what routes note in it (see
        # mark_stale_read) is seen here even through middleware that copies the scope.
        scope.setdefault("state", {})
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as exc:
            if started:  # too late to answer differently: let the server close it
                raise
            response = _problem_for(exc, scope, self.statuses, self.retry_after)
            await response(scope, receive, send)
