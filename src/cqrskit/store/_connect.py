"""Opening a store: failures to connect become :class:`StoreUnavailable`, which names the
store and its URL (password masked) and chains the driver's own error.

Shared by the event stores and the read stores, whatever the driver: each passes the
exception types its driver raises when the server cannot be reached.
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import sqlite3
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from cqrskit.errors import StoreOptionError, StoreUnavailable

__all__ = [
    "COMMAND_TIMEOUT",
    "CONNECT_TIMEOUT",
    "SCAN_TIMEOUT",
    "SQLITE_OPEN_ERRORS",
    "Timeouts",
    "connecting",
    "masked_url",
    "positive_number",
    "timeouts",
    "unavailable",
]

CONNECT_TIMEOUT: Final = 3.0
"""Seconds a new connection to a database server may take (asyncpg's own default is 60)."""
COMMAND_TIMEOUT: Final = 3.0
"""Seconds one statement may take on PostgreSQL (asyncpg's own default: no limit).

A server that stops answering without closing the connection (a network partition, a
black-holed route) would otherwise hold every caller, and the pool's connections, for as
long as it lasts. After the timeout asyncpg also waits up to this long for the query's
cancellation, so a caller gets its error (and the web layer its 503) within about twice
this (plus :data:`CONNECT_TIMEOUT` when it then needs a new connection; a caller queued
behind a pool whose connections are all stuck waits for them too). A statement that
legitimately runs longer needs a larger value (schema migrations and the whole-model reads
of a verify have longer limits of their own: see :data:`SCAN_TIMEOUT`)."""
SCAN_TIMEOUT: Final = 600.0
"""Seconds one statement of a long operation may take on PostgreSQL, at least: reading a
whole read model for a verify (ten minutes; a larger ``command_timeout`` raises it too).
Schema migrations have no limit at all."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a store waits for its server: to connect, and for one statement or reply."""

    connect: float = CONNECT_TIMEOUT
    command: float = COMMAND_TIMEOUT


def positive_number(option: str, value: object, *, where: str, integer: bool = False) -> float:
    """``value`` (a URL option's text or a keyword argument) as a finite number above 0;
    :class:`StoreOptionError` naming ``option`` otherwise."""
    expected = "a positive integer" if integer else "a positive number of seconds"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise StoreOptionError(option, expected, value, where=where)
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        raise StoreOptionError(option, expected, value, where=where) from None
    if not (math.isfinite(number) and number > 0):
        raise StoreOptionError(option, expected, value, where=where)
    return number


def timeouts(
    store: str,
    url_options: Mapping[str, str],
    connect_timeout: float | None,
    command_timeout: float | None,
    *,
    defaults: Timeouts = Timeouts(),
) -> Timeouts:
    """The timeouts ``store`` (e.g. "event store") opens with: its keyword arguments
    ``connect_timeout`` / ``command_timeout``, else its URL options of the same names,
    else ``defaults``; each a positive number of seconds (:class:`StoreOptionError`)."""

    def chosen(name: str, argument: float | None, default: float) -> float:
        if isinstance(argument, str):  # text is for URLs: an argument is a number
            raise StoreOptionError(name, "a positive number of seconds", argument, where=store)
        if argument is not None:
            return positive_number(name, argument, where=f"{store} argument")
        if name in url_options:
            return positive_number(name, url_options[name], where=f"{store} URL option")
        return default

    return Timeouts(
        connect=chosen("connect_timeout", connect_timeout, defaults.connect),
        command=chosen("command_timeout", command_timeout, defaults.command),
    )


SQLITE_OPEN_ERRORS: Final[tuple[type[BaseException], ...]] = (OSError, sqlite3.OperationalError)
"""What opening a SQLite file raises when it cannot be: a directory that cannot be made,
no permission, a path that is a directory ("unable to open database file")."""

_MASK: Final = "***"
# The password in a URL's user info: from the first ":" after the user name to the last "@"
# before any query or fragment (urlsplit's reading, and also right for a password holding
# an unescaped "/", which urlsplit would take for the path).
_PASSWORD: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*):[^?#]*@")
# Query options that carry a secret (libpq's password and sslpassword, redis-py's password).
_SECRET_OPTION: Final = re.compile(r"(?i)((?:^|&)[^&=]*pass[^&=]*=)[^&#]*")


def masked_url(url: str) -> str:
    """``url`` with its password (and any ``password=`` option) replaced by ``***``."""
    masked = _PASSWORD.sub(rf"\g<1>:{_MASK}@", url, count=1)
    base, question, query = masked.partition("?")
    if question:
        masked = base + question + _SECRET_OPTION.sub(rf"\g<1>{_MASK}", query)
    return masked


def unavailable(store: str, url: str, exc: BaseException) -> StoreUnavailable:
    """The error saying that ``store`` (e.g. "PostgreSQL event store") at ``url`` could
    not be reached, and why; raise it ``from exc``."""
    verb = "open" if store.startswith("SQLite") else "connect to"
    return StoreUnavailable(
        f"could not {verb} the {store} at {masked_url(url)}: {_reason(exc, url)}"
    )


@contextlib.asynccontextmanager
async def connecting(
    store: str, url: str, errors: tuple[type[BaseException], ...]
) -> AsyncIterator[None]:
    """Turn ``errors`` raised in the block into :func:`unavailable` (chained)."""
    try:
        yield
    except StoreUnavailable:
        raise
    except errors as exc:
        raise unavailable(store, url, exc) from exc


def _reason(exc: BaseException, url: str) -> str:
    if isinstance(exc, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(exc, socket.gaierror):
        reason = f"cannot resolve the host ({exc.strerror})"
    elif isinstance(exc, TimeoutError):
        reason = "timed out"
    else:
        text = str(exc)
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    # Drivers do not echo the password, but a message must never carry it: be sure.
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        reason = reason.replace(password, _MASK)
    return reason
