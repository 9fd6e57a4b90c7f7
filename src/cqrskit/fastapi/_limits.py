"""A cap on request bodies, enforced while they are read: 413 problem+json past it."""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cqrskit.fastapi._problems import document_problem, problem_response

__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodySizeLimit", "RequestBodyTooLarge", "install_body_limit"]

DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024
"""64 KiB: far above any command body a service of JSON commands needs, far below what
would let a few clients fill the server's memory."""


class RequestBodyTooLarge(HTTPException):
    """The request body passed the limit (413). An ``HTTPException``, so that where it is
    raised inside a route (FastAPI reading the body) the problem handlers answer it."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class BodySizeLimit:
    """Pure ASGI middleware refusing request bodies larger than ``max_bytes`` with a 413
    ``application/problem+json`` answer.

    A ``Content-Length`` above the limit is refused before the app runs. Otherwise the
    bytes are counted as the app reads them, so a body that lies about its length, has
    none, or comes in chunks is stopped as soon as it passes the limit: at most
    ``max_bytes`` plus one chunk is ever held. Bodies nobody reads cost nothing.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (_declared_length(scope) or 0) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestBodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watched_send)
        except RequestBodyTooLarge:
            # Raised outside a route (by a middleware reading the body, say): nobody
            # answered it yet, unless the response had already begun.
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        too_large = RequestBodyTooLarge(self.max_bytes)
        response = problem_response(413, too_large.detail, instance=scope.get("path", ""))
        await response(scope, receive, send)


def _declared_length(scope: Scope) -> int | None:
    """The ``Content-Length`` header as a number; ``None`` when missing or malformed (the
    counting then decides, so a malformed header gains the client nothing)."""
    value = Headers(scope=scope).get("content-length")
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    # Past 18 digits it exceeds any limit; int() of thousands of digits would even raise.
    return int(value) if len(value) <= 18 else 10**18


def install_body_limit(app: FastAPI, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
    """Refuse request bodies of ``app`` larger than ``max_bytes`` (413 problem+json).

    Call it before the app starts, like the other ``install_*`` functions. It sits inside
    :func:`install_metrics`' middleware, so refused requests are still counted, and
    every operation taking a body documents the 413 in the OpenAPI document.
    """
    if app.middleware_stack is not None:
        raise RuntimeError("install_body_limit must be called before the app starts")
    app.user_middleware.append(Middleware(BodySizeLimit, max_bytes=max_bytes))
    document_problem(app, 413)
