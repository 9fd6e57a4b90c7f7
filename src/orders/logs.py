"""Log setup of the orders entrypoints: human-readable lines, or one JSON object per line.

Every process of the service (``orders serve`` and each CLI command) logs through the
standard library to stderr, configured here once, so that uvicorn's, cqrskit's and the
service's records all come out in the same format. JSON lines carry the structured
fields a record was logged with (``extra=``), such as the ``correlation_id``,
``message_type``, ``outcome`` and ``duration_ms`` of cqrskit's ``LoggingMiddleware``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal

__all__ = ["TEXT_FORMAT", "JsonFormatter", "configure_logging"]

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord has: anything else on a record came in through ``extra=``
# (uvicorn's "color_message" too: the message again, with terminal colour codes).
_STANDARD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, the record's
    ``extra`` fields, and ``exception`` (the traceback text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            entry.update(_access_fields(record.args))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _access_fields(args: tuple[Any, ...]) -> dict[str, Any]:
    # uvicorn logs each request as (client, method, path, http version, status): giving
    # them names lets a log shipper filter on status without parsing the message.
    if len(args) != 5:
        return {}
    client, method, path, _version, status = args
    return {"client": client, "method": method, "path": path, "status": status}


def configure_logging(level: str, log_format: Literal["text", "json"]) -> None:
    """Send every logger's records to stderr at ``level`` in ``log_format``.

    Replaces the root logger's handlers, so that calling it twice (tests run several
    commands in one process) does not print each record twice. uvicorn's loggers keep no
    handlers of their own: start uvicorn with ``log_config=None`` and they propagate here.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # A client library's line per request drowns what the command itself says.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
