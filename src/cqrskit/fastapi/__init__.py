"""cqrskit's FastAPI integration: the one place in cqrskit that knows FastAPI.

- wiring: :class:`CqrsServices`, :func:`cqrs_lifespan`, and the route dependencies
  :data:`ServicesDep`, :data:`CommandBusDep`, :data:`QueryBusDep`;
- errors: :func:`install_problem_handlers` answers every error as RFC 9457
  ``application/problem+json``;
- commands: :func:`command_metadata` (``Idempotency-Key`` to command id),
  :func:`command_response` (``Consistency-Token``), :func:`etag` / :func:`if_match_version`;
- queries: :func:`read_your_writes` (``Consistency-Token`` in, ``Stale-Read`` out);
- operations: :func:`install_metrics` (``GET /metrics``), :func:`install_health`;
- limits: :func:`install_body_limit` (:class:`BodySizeLimit`, 413 past the cap).

See docs/fastapi.md for a complete example.
"""

from __future__ import annotations

try:
    import fastapi as _fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError('cqrskit.fastapi needs FastAPI: pip install "cqrskit[fastapi]"') from exc

from cqrskit.fastapi._commands import (
    COMMAND_RESPONSES,
    CONSISTENCY_TOKEN,
    CORRELATION_ID,
    IDEMPOTENCY_KEY,
    IDEMPOTENT_REPLAYED,
    IF_MATCH,
    command_metadata,
    command_response,
    command_responses,
    etag,
    if_match_version,
)
from cqrskit.fastapi._limits import (
    DEFAULT_MAX_BODY_BYTES,
    BodySizeLimit,
    RequestBodyTooLarge,
    install_body_limit,
)
from cqrskit.fastapi._metrics import HttpMetrics, install_metrics
from cqrskit.fastapi._problems import (
    DEFAULT_STATUSES,
    PROBLEM_MEDIA_TYPE,
    Problem,
    document_problem,
    header_error,
    install_problem_handlers,
    mark_stale_read,
    problem_response,
    problem_responses,
)
from cqrskit.fastapi._reads import QUERY_RESPONSES, STALE_READ, ReadConsistency, read_your_writes
from cqrskit.fastapi._services import (
    CommandBusDep,
    CqrsServices,
    QueryBusDep,
    ServicesDep,
    app_services,
    cqrs_lifespan,
    get_command_bus,
    get_query_bus,
    get_services,
    install_health,
)

__all__ = [
    "COMMAND_RESPONSES",
    "CONSISTENCY_TOKEN",
    "CORRELATION_ID",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_STATUSES",
    "IDEMPOTENCY_KEY",
    "IDEMPOTENT_REPLAYED",
    "IF_MATCH",
    "PROBLEM_MEDIA_TYPE",
    "QUERY_RESPONSES",
    "STALE_READ",
    "BodySizeLimit",
    "CommandBusDep",
    "CqrsServices",
    "HttpMetrics",
    "Problem",
    "QueryBusDep",
    "ReadConsistency",
    "RequestBodyTooLarge",
    "ServicesDep",
    "app_services",
    "command_metadata",
    "command_response",
    "command_responses",
    "cqrs_lifespan",
    "document_problem",
    "etag",
    "get_command_bus",
    "get_query_bus",
    "get_services",
    "header_error",
    "if_match_version",
    "install_body_limit",
    "install_health",
    "install_metrics",
    "install_problem_handlers",
    "mark_stale_read",
    "problem_response",
    "problem_responses",
    "read_your_writes",
]
