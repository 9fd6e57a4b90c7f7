"""Commands over HTTP: Idempotency-Key to command id, answers with Consistency-Token, and
ETag / If-Match for optimistic concurrency across requests."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Final

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from cqrskit._ids import new_id
from cqrskit.bus import CommandResult
from cqrskit.fastapi._problems import header_error, problem_responses
from cqrskit.messages import Metadata

__all__ = [
    "COMMAND_RESPONSES",
    "CONSISTENCY_TOKEN",
    "CORRELATION_ID",
    "IDEMPOTENCY_KEY",
    "IDEMPOTENT_REPLAYED",
    "IF_MATCH",
    "command_metadata",
    "command_response",
    "command_responses",
    "etag",
    "if_match_version",
]

IDEMPOTENCY_KEY: Final = "Idempotency-Key"
CONSISTENCY_TOKEN: Final = "Consistency-Token"
IDEMPOTENT_REPLAYED: Final = "Idempotent-Replayed"
CORRELATION_ID: Final = "X-Correlation-Id"
IF_MATCH: Final = "If-Match"

# Fixed forever: changing it would give every Idempotency-Key a new command id.
_KEY_NAMESPACE: Final = uuid.UUID("5c0f6a0e-8f0b-4a43-9a55-0c9a2f8e3b71")
_KEY: Final = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")
_ETAG: Final = re.compile(r'"(0|[1-9][0-9]{0,18})"')


def command_metadata(request: Request, user_id: str | None = None, scope: str = "") -> Metadata:
    """Metadata for the command a request sends.

    The command id comes from the ``Idempotency-Key`` header (1-255 printable ASCII
    characters, else a 422 problem): ``uuid5`` of ``scope`` and the key, so that the same
    key from two callers (pass the authenticated subject as ``scope``) are two commands. A
    repeat of the request then replays the first answer, and the same key with another
    body is refused (422). Without the header the id is fresh. The correlation id comes
    from ``X-Correlation-Id`` when that is a UUID.
    """
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        message_id = new_id()
    elif _KEY.fullmatch(key):
        # Keys are printable ASCII, so a newline cannot occur in one: scopes cannot blur.
        message_id = uuid.uuid5(_KEY_NAMESPACE, f"{scope}\n{key}")
    else:
        raise header_error(
            IDEMPOTENCY_KEY, "must be 1 to 255 printable ASCII characters", key[:300]
        )
    return Metadata(
        message_id=message_id,
        correlation_id=_uuid_or_none(request.headers.get(CORRELATION_ID)),
        user_id=user_id,
    )


def _uuid_or_none(text: str | None) -> uuid.UUID | None:
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None  # a caller's malformed trace id is no reason to refuse its command


def command_response(
    result: CommandResult,
    body: BaseModel | Mapping[str, Any],
    status_code: int = 201,
    location: str | None = None,
) -> JSONResponse:
    """The answer to a command: ``body`` with ``Consistency-Token: <result.token>``,
    ``Idempotent-Replayed: true`` on a replay, and ``Location`` when given.

    Derive ``body`` and ``location`` from ``result`` only, so that a replayed request
    answers exactly like the first one did.
    """
    content = body.model_dump(mode="json") if isinstance(body, BaseModel) else dict(body)
    headers = {CONSISTENCY_TOKEN: result.token}
    if result.replayed:
        headers[IDEMPOTENT_REPLAYED] = "true"
    if location is not None:
        headers["Location"] = location
    return JSONResponse(content, status_code, headers=headers)


def command_responses(status_code: int = 201) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a command route: its headers and its problem answers.

    Use with the route's ``response_model`` and ``status_code``, which document the body.
    """
    headers = {
        CONSISTENCY_TOKEN: {
            "description": "Pass it on a later query to read this command's effects.",
            "schema": {"type": "string"},
        },
        IDEMPOTENT_REPLAYED: {
            "description": "`true` when this is the replayed answer to an earlier request.",
            "schema": {"type": "string"},
        },
    }
    return {
        status_code: {"description": "Done", "headers": headers},
        **problem_responses(404, 409, 412, 422, 503),
    }


COMMAND_RESPONSES: Final = command_responses(201)
""":func:`command_responses` for a route answering 201 Created."""


def etag(version: int) -> str:
    """The strong entity tag of an aggregate or view version: ``"3"`` (quotes included)."""
    return f'"{version}"'


async def if_match_version(  # a coroutine: a plain function would run in the thread pool
    if_match: Annotated[
        str | None,
        Header(
            alias=IF_MATCH,
            description='The ETag read before (`"3"`): change only that version.',
        ),
    ] = None,
) -> int | None:
    """Dependency: the version a client's ``If-Match`` names; ``None`` without it or for ``*``.

    Accepts one strong entity tag made by :func:`etag`; anything else is a 422 problem
    naming the header. Put the version in the command; its handler passes it as
    ``uow.load(..., expected_version=...)``, and a mismatch answers 412.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    match = _ETAG.fullmatch(if_match.strip())
    if match is None:
        raise header_error(
            IF_MATCH, 'must be one strong entity tag from an ETag, like "3", or *', if_match
        )
    return int(match.group(1))
