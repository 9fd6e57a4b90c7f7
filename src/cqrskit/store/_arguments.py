"""Checks of the arguments every event store takes, made before any I/O.

One implementation for every backend, so that the same bad argument raises the same error
(type and message) whether the store is in memory, SQLite or PostgreSQL, instead of
whatever the driver makes of it (an ``AttributeError``, a silently truncated float, an
``asyncpg.DataError``). A wrong kind of argument is a ``TypeError``; a right kind with a
value no store can take is a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Final

from cqrskit.messages import DomainEvent, Message
from cqrskit.store.base import ANY, Idempotency, Position, StreamAppend

__all__ = [
    "MAX_ID_BYTES",
    "MAX_INT64",
    "check_appends",
    "check_events",
    "check_expected_version",
    "check_from_version",
    "check_id",
    "check_idempotency",
    "check_limit",
    "check_position",
    "check_types",
]

MAX_INT64: Final = 2**63 - 1
"""The largest version, position or limit: PostgreSQL and SQLite keep them in 64 bits."""

MAX_ID_BYTES: Final = 1000
"""The longest stream id or idempotency key, in UTF-8 bytes: PostgreSQL indexes both,
and a b-tree entry must fit in a third of a page (~2,700 bytes)."""


def check_id(value: object, what: str, *, allow_empty: bool = False) -> str:
    """``value`` if it is text every backend stores as it is: a ``str`` with no NUL
    character and no lone surrogate (not valid UTF-8), at most :data:`MAX_ID_BYTES`."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {describe(value)}")
    if not value:
        if allow_empty:
            return value
        raise ValueError(f"{what} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters: {_shown(value)}")
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode())
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{what} must be valid Unicode text, but it holds a lone surrogate "
                f"{value[exc.start]!r} at index {exc.start}: {_shown(value)}"
            ) from None
    if size > MAX_ID_BYTES:
        raise ValueError(f"{what} must be at most {MAX_ID_BYTES} bytes in UTF-8, got {size}")
    return value


def check_expected_version(value: object) -> int:
    """``value`` if it is an expected version: ``ANY`` (-1), ``NO_STREAM`` (0) or a
    stream version (1 to 2**63-1), as an ``int`` (not a ``bool`` nor a ``float``)."""
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(
            "expected version must be an int (ANY, NO_STREAM or a version >= 1), "
            f"got {describe(value)}"
        )
    if not ANY <= value <= MAX_INT64:
        raise ValueError(
            f"expected version must be ANY (-1), NO_STREAM (0) or a version from 1 to "
            f"2**63-1, got {value}"
        )
    return value


def check_events(events: object, stream_id: str) -> Sequence[DomainEvent]:
    """``events`` if it is a sequence (a list, a tuple) of :class:`DomainEvent`."""
    if type(events) is not list and type(events) is not tuple:
        if isinstance(events, DomainEvent):
            raise TypeError(
                f"events must be a sequence of DomainEvent, got {type(events).__name__} "
                "(a single event: wrap it in a list)"
            )
        if not isinstance(events, Sequence) or isinstance(events, str | bytes | bytearray):
            raise TypeError(f"events must be a sequence of DomainEvent, got {describe(events)}")
    for index, event in enumerate(events):
        if not isinstance(event, DomainEvent):
            raise TypeError(
                f"events[{index}] of stream {stream_id!r} must be a DomainEvent, "
                f"got {describe(event)}"
            )
    return events


def check_appends(appends: object) -> Sequence[StreamAppend]:
    """``appends`` if it is a sequence of :class:`StreamAppend`."""
    if type(appends) is not list and type(appends) is not tuple:
        if isinstance(appends, StreamAppend):
            raise TypeError(
                "appends must be a sequence of StreamAppend, got a single StreamAppend "
                "(wrap it in a list)"
            )
        if not isinstance(appends, Sequence) or isinstance(appends, str | bytes | bytearray):
            raise TypeError(f"appends must be a sequence of StreamAppend, got {describe(appends)}")
    for index, append in enumerate(appends):
        if not isinstance(append, StreamAppend):
            raise TypeError(f"appends[{index}] must be a StreamAppend, got {describe(append)}")
    return appends


def check_idempotency(idempotency: object) -> Idempotency | None:
    """``idempotency`` if it is ``None`` or an :class:`Idempotency` with a usable key."""
    if idempotency is None:
        return None
    if not isinstance(idempotency, Idempotency):
        raise TypeError(
            f"idempotency must be an Idempotency(key, result_id) or None, "
            f"got {describe(idempotency)}"
        )
    check_id(idempotency.key, "an idempotency key")
    check_id(idempotency.result_id, "an idempotency result id", allow_empty=True)
    return idempotency


def check_limit(limit: object) -> int:
    """``limit`` if it is an ``int`` from 1 to 2**63-1."""
    if type(limit) is not int and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise TypeError(f"limit must be an int >= 1, got {describe(limit)}")
    if not 1 <= limit <= MAX_INT64:
        raise ValueError(f"limit must be >= 1 and <= 2**63-1, got {limit}")
    return limit


def check_from_version(from_version: object) -> int:
    """``from_version`` if it is a stream version: an ``int`` from 1 to 2**63-1."""
    if type(from_version) is not int and (
        isinstance(from_version, bool) or not isinstance(from_version, int)
    ):
        raise TypeError(
            f"from_version must be an int (a stream version >= 1), got {describe(from_version)}"
        )
    if not 1 <= from_version <= MAX_INT64:
        raise ValueError(
            f"from_version must be a stream version from 1 to 2**63-1, got {from_version}"
        )
    return from_version


def check_position(after: object) -> Position:
    """``after`` as a :class:`Position`: a position, or a consistency token (its ``str``)
    read with :meth:`Position.parse` (``ValueError`` when malformed)."""
    if isinstance(after, str):
        return Position.parse(after)
    if not isinstance(after, Position):
        raise TypeError(
            f"after must be a Position or a consistency token (str), got {describe(after)}"
        )
    commit, seq = after.commit, after.seq
    if type(commit) is not int or type(seq) is not int:
        raise TypeError(f"a position's commit and seq must be ints, got {after!r}")
    if not (0 <= commit <= MAX_INT64 and 0 <= seq <= MAX_INT64):
        raise ValueError(f"a position's commit and seq must be from 0 to 2**63-1, got {after!r}")
    return after


def check_types(types: object) -> tuple[type[DomainEvent], ...] | None:
    """``types`` as a tuple, if it is ``None`` or a collection of event classes."""
    if types is None:
        return None
    if isinstance(types, str | bytes | Mapping) or not isinstance(types, Collection):
        raise TypeError(f"types must be a collection of event classes, got {describe(types)}")
    for kind in types:
        if not (isinstance(kind, type) and issubclass(kind, DomainEvent)):
            raise TypeError(
                f"types must hold DomainEvent subclasses, got {describe(kind)} ({_shown(kind)})"
            )
    return tuple(types)


def describe(value: object) -> str:
    """How an unexpected argument is shown in an error: its type, and what it is."""
    kind = type(value).__name__
    if isinstance(value, Message):
        base = next(
            (b.__name__ for b in type(value).__mro__[1:] if b.__module__ == Message.__module__),
            "Message",
        )
        return f"{kind} (a {base})"
    if isinstance(value, str | bytes | int | float) or value is None:
        return f"{kind} {_shown(value)}"
    if isinstance(value, Mapping):
        return f"{kind} (a mapping)"
    return kind


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"
