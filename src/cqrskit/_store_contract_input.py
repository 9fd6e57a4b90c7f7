"""The event-store contract on bad input: one table of bad calls, the same error everywhere.

A themed part of :class:`cqrskit.testing.EventStoreContract` (which inherits it): every
backend must refuse the same bad argument with the same exception type and message, before
any I/O, and write nothing; and must refuse an event it could not read back.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from cqrskit.errors import EventEncodingError
from cqrskit.messages import Command, DomainEvent
from cqrskit.store.base import START, EventStore, Idempotency, Position, StreamAppend

__all__ = ["BadInputContract", "Measured"]


class Measured(DomainEvent):
    """Contract-suite event with floats, which JSON cannot hold when NaN or infinite."""

    event_type = "contract.Measured"
    value: float
    samples: list[float] = []
    spare: float | None = None


class _Probe(Command):
    """A command, handed to the store where an event belongs."""


def _ok() -> Measured:
    return Measured(value=1.5)


def _unvalidated(**values: Any) -> Measured:
    # model_construct skips validation: how wrongly typed events reach a store.
    return Measured.model_construct(**values)


def _stream() -> str:
    return f"contract-{uuid.uuid4().hex}"


Call = Callable[[EventStore, str], Awaitable[object]]


@dataclass(frozen=True)
class _Bad:
    call: Call
    error: type[Exception]
    match: str


def _bad(id: str, call: Call, error: type[Exception], match: str) -> Any:
    return pytest.param(_Bad(call, error, match), id=id)


def _expected(version: Any) -> Call:
    return lambda store, stream: store.append(stream, [_ok()], version)


def _stream_id(stream_id: Any) -> Call:
    return lambda store, _stream: store.append(stream_id, [_ok()])


def _events(events: Any) -> Call:
    return lambda store, stream: store.append(stream, events)


def _appends(appends: Any) -> Call:
    return lambda store, _stream: store.append_many(appends)


def _idempotency(idempotency: Any) -> Call:
    return lambda store, stream: store.append(stream, [_ok()], idempotency=idempotency)


def _read_all(after: Any = START, limit: Any = 10, types: Any = None) -> Call:
    return lambda store, _stream: store.read_all(after, limit, types=types)


def _next_events(after: Any = START, limit: Any = 10, types: Any = None) -> Call:
    return lambda store, _stream: store.next_events(after, limit, timeout=0, types=types)


def _read_stream(stream_id: Any, from_version: Any = 1) -> Call:
    return lambda store, _stream: store.read_stream(stream_id, from_version)


_HUGE = 2**70
_SURROGATE = "s-\ud800"

BAD_CALLS = [
    # expected versions: an int (not bool) in ANY, NO_STREAM, 1 .. 2**63-1
    _bad("version-float", _expected(1.5), TypeError, "expected version must be an int"),
    _bad("version-nan", _expected(math.nan), TypeError, "expected version must be an int"),
    _bad("version-bool", _expected(True), TypeError, "expected version must be an int"),
    _bad("version-str", _expected("1"), TypeError, "expected version must be an int"),
    _bad("version-none", _expected(None), TypeError, "expected version must be an int"),
    _bad("version-negative", _expected(-7), ValueError, "expected version must be ANY"),
    _bad("version-huge", _expected(_HUGE), ValueError, "expected version must be ANY"),
    _bad("version-2**63", _expected(2**63), ValueError, "expected version must be ANY"),
    # stream ids: a non-empty str, valid UTF-8, no NUL, at most 1000 bytes
    _bad("stream-empty", _stream_id(""), ValueError, "stream id must not be empty"),
    _bad("stream-int", _stream_id(5), TypeError, "stream id must be a str, got int"),
    _bad("stream-none", _stream_id(None), TypeError, "stream id must be a str"),
    _bad("stream-bytes", _stream_id(b"s-1"), TypeError, "stream id must be a str"),
    _bad("stream-surrogate", _stream_id(_SURROGATE), ValueError, "lone surrogate"),
    _bad("stream-nul", _stream_id("s\x00"), ValueError, "stream id must not contain NUL"),
    _bad("stream-long", _stream_id("s" * 1001), ValueError, "at most 1000 bytes"),
    _bad("stream-long-utf8", _stream_id("é" * 501), ValueError, "at most 1000 bytes"),
    # events: a sequence of DomainEvent
    _bad("events-single", _events(_ok()), TypeError, r"got Measured \(a single event: wrap"),
    _bad("events-str", _events("abc"), TypeError, "events must be a sequence of DomainEvent"),
    _bad("events-dict", _events({"a": 1}), TypeError, "events must be a sequence of Domain"),
    _bad("events-none", _events(None), TypeError, "events must be a sequence of DomainEvent"),
    _bad("events-generator", _events(_ok() for _ in "x"), TypeError, "must be a sequence"),
    _bad("events-command", _events([_Probe()]), TypeError, r"events\[0\].*got _Probe \(a Command"),
    _bad("events-dict-item", _events([_ok(), {"value": 1}]), TypeError, r"events\[1\]"),
    # append_many: a sequence of StreamAppend
    _bad(
        "appends-single",
        _appends(StreamAppend("s-1", [_ok()])),
        TypeError,
        "got a single StreamAppend",
    ),
    _bad("appends-tuple-item", _appends([("s-1", [_ok()])]), TypeError, r"appends\[0\] must be"),
    _bad("appends-str", _appends("s-1"), TypeError, "appends must be a sequence of StreamAppend"),
    # idempotency: None or Idempotency(non-empty str key, str result id)
    _bad("key-empty", _idempotency(Idempotency("")), ValueError, "idempotency key must not be"),
    _bad("key-int", _idempotency(Idempotency(5)), TypeError, "idempotency key must be a str"),  # type: ignore[arg-type]
    _bad("key-nul", _idempotency(Idempotency("k\x00")), ValueError, "must not contain NUL"),
    _bad("key-surrogate", _idempotency(Idempotency(_SURROGATE)), ValueError, "lone surrogate"),
    _bad(
        "result-id-int",
        _idempotency(Idempotency("k", 5)),  # type: ignore[arg-type]
        TypeError,
        "result id must be a str",
    ),
    _bad("key-as-str", _idempotency("k-1"), TypeError, "idempotency must be an Idempotency"),
    # read_all / next_events: limit an int in 1 .. 2**63-1; after a Position or a token
    _bad("limit-zero", _read_all(limit=0), ValueError, "limit must be >= 1"),
    _bad("limit-negative", _read_all(limit=-5), ValueError, "limit must be >= 1"),
    _bad("limit-huge", _read_all(limit=_HUGE), ValueError, "limit must be >= 1"),
    _bad("limit-float", _read_all(limit=1.5), TypeError, "limit must be an int"),
    _bad("limit-bool", _read_all(limit=True), TypeError, "limit must be an int"),
    _bad("limit-str", _read_all(limit="10"), TypeError, "limit must be an int"),
    _bad("after-token-malformed", _read_all("12:ab"), ValueError, "not a consistency token"),
    _bad("after-token-huge", _read_all(str(_HUGE)), ValueError, "not a consistency token"),
    _bad("after-int", _read_all(5), TypeError, "after must be a Position or a consistency"),
    _bad("after-none", _read_all(None), TypeError, "after must be a Position"),
    _bad("after-negative", _read_all(Position(0, -1)), ValueError, "from 0 to 2\\*\\*63-1"),
    _bad("after-huge", _read_all(Position(_HUGE, 0)), ValueError, "from 0 to 2\\*\\*63-1"),
    _bad("after-float", _read_all(Position(0, 1.5)), TypeError, "must be ints"),  # type: ignore[arg-type]
    _bad("next-limit-zero", _next_events(limit=0), ValueError, "limit must be >= 1"),
    _bad("next-limit-float", _next_events(limit=2.0), TypeError, "limit must be an int"),
    _bad("next-after-malformed", _next_events("x"), ValueError, "not a consistency token"),
    _bad("next-after-int", _next_events(5), TypeError, "after must be a Position"),
    # types: None or a collection of DomainEvent classes (not names)
    _bad("types-name", _read_all(types="contract.Noted"), TypeError, "collection of event"),
    _bad("types-names", _read_all(types=["contract.Noted"]), TypeError, "DomainEvent subclass"),
    _bad("types-event", _read_all(types=[_ok()]), TypeError, "DomainEvent subclasses"),
    _bad("types-class", _read_all(types=[str]), TypeError, "DomainEvent subclasses"),
    _bad("types-one", _read_all(types=Measured), TypeError, "collection of event classes"),
    _bad("next-types-name", _next_events(types="x"), TypeError, "collection of event classes"),
    # read_stream: a stream id as above; from_version an int in 1 .. 2**63-1
    _bad("from-zero", _read_stream("s-1", 0), ValueError, "from_version must be a stream"),
    _bad("from-negative", _read_stream("s-1", -1), ValueError, "from_version must be a stream"),
    _bad("from-huge", _read_stream("s-1", _HUGE), ValueError, "from_version must be a stream"),
    _bad("from-float", _read_stream("s-1", 1.5), TypeError, "from_version must be an int"),
    _bad("from-bool", _read_stream("s-1", True), TypeError, "from_version must be an int"),
    _bad("read-stream-empty", _read_stream(""), ValueError, "stream id must not be empty"),
    _bad("read-stream-surrogate", _read_stream(_SURROGATE), ValueError, "lone surrogate"),
    _bad("read-stream-int", _read_stream(5), TypeError, "stream id must be a str"),
    _bad(
        "stream-version-nul",
        lambda store, _s: store.stream_version("s\x00"),
        ValueError,
        "must not contain NUL",
    ),
    _bad(
        "find-idempotent-empty",
        lambda store, _s: store.find_idempotent(""),
        ValueError,
        "idempotency key must not be empty",
    ),
]
"""Every bad call, the exception it must raise and a pattern its message must match."""


def _unreadable(id: str, event: Callable[[], DomainEvent], field: str) -> Any:
    return pytest.param(event, field, id=id)


UNREADABLE_EVENTS = [
    _unreadable("nan", lambda: Measured(value=math.nan), "value"),
    _unreadable("infinity", lambda: Measured(value=math.inf), "value"),
    _unreadable(
        "nested-minus-infinity", lambda: Measured(value=1, samples=[1, -math.inf]), "samples"
    ),
    # Would read back as None: silently changed, so refused too.
    _unreadable("optional-nan", lambda: Measured(value=1, spare=math.nan), "spare"),
    _unreadable("wrong-type", lambda: _unvalidated(value="heavy"), "value"),
    _unreadable("missing-field", lambda: _unvalidated(), "value"),
    _unreadable("wrong-item-type", lambda: _unvalidated(value=1.0, samples=["x"]), "samples"),
]
"""Events an append must refuse, each with the field its error must name."""


class BadInputContract:
    """Bad arguments and unreadable events: refused alike by every backend, nothing written.

    Part of :class:`cqrskit.testing.EventStoreContract`; uses its ``store`` fixture, opened
    with a registry that knows :class:`Measured`.
    """

    @pytest.mark.parametrize("bad", BAD_CALLS)
    async def test_bad_calls_raise_the_same_error_on_every_backend(
        self, store: EventStore, bad: _Bad
    ) -> None:
        stream = _stream()
        head = await store.head()
        with pytest.raises(bad.error, match=bad.match):
            await bad.call(store, stream)
        assert await store.head() == head
        assert await store.stream_version(stream) == 0

    @pytest.mark.parametrize(("event", "field"), UNREADABLE_EVENTS)
    async def test_events_that_could_not_be_read_back_are_refused(
        self, store: EventStore, event: Callable[[], DomainEvent], field: str
    ) -> None:
        stream = _stream()
        await store.append(stream, [_ok()])
        head = await store.head()
        with pytest.raises(EventEncodingError, match=r"contract\.Measured") as caught:
            await store.append(stream, [_ok(), event()])
        assert caught.value.event_type == "contract.Measured"
        assert caught.value.field.startswith(field)
        assert field in str(caught.value)
        assert "expected" in str(caught.value) or "should be" in str(caught.value)
        assert isinstance(caught.value, ValueError)
        # Nothing written, and the stream and the global order still read.
        assert await store.head() == head
        assert [r.version for r in await store.read_stream(stream)] == [1]
        assert await store.read_all(head) == []

    async def test_one_refused_event_fails_a_whole_multi_stream_append(
        self, store: EventStore
    ) -> None:
        first, second = _stream(), _stream()
        head = await store.head()
        with pytest.raises(EventEncodingError, match="value"):
            await store.append_many(
                [
                    StreamAppend(first, [_ok(), _ok()]),
                    StreamAppend(second, [_ok(), Measured(value=math.nan)]),
                ]
            )
        assert await store.head() == head
        assert [await store.stream_version(s) for s in (first, second)] == [0, 0]

    async def test_read_all_and_next_events_take_a_consistency_token(
        self, store: EventStore
    ) -> None:
        head = await store.head()
        stream = _stream()
        await store.append(stream, [Measured(value=1), Measured(value=2), Measured(value=3)])
        by_position = await store.read_all(head, 10)
        token = str(head)
        assert [r.position for r in await store.read_all(token, 10)] == [
            r.position for r in by_position
        ]
        after_first = str(by_position[0].position)
        assert [r.version for r in await store.read_all(after_first)] == [2, 3]
        assert [r.version for r in await store.next_events(after_first, 1, timeout=1)] == [2]
        assert await store.wait_for_events(token, timeout=0) is True
