"""The event-store contract on writing: expected versions, multi-stream appends, refused
input, concurrent writers, idempotency, and the whole store against a simple model.

A themed part of :class:`cqrskit.testing.EventStoreContract` (which inherits it).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqrskit._store_contract_kit import (
    AddItem,
    StoreOpener,
    Tally,
    _add_item,
    _note,
    _stream,
    _Unregistered,
    contract_registry,
    read_through,
)
from cqrskit.bus import CommandBus
from cqrskit.errors import ConcurrencyError, UnknownEventType
from cqrskit.middleware import IdempotencyMiddleware
from cqrskit.repository import Repository
from cqrskit.store.base import ANY, NO_STREAM, EventStore, Idempotency, StreamAppend


class _AppendContract:
    """What every event store must do when appending."""

    concurrent_writers: ClassVar[int]

    # -- expected versions ------------------------------------------------------------

    async def test_no_stream_creates_and_then_conflicts(self, store: EventStore) -> None:
        stream = _stream()
        result = await store.append(stream, [_note("a"), _note("b")], NO_STREAM)
        assert result.version == 2
        assert result.versions == {stream: 2}
        with pytest.raises(ConcurrencyError) as caught:
            await store.append(stream, [_note("c")], NO_STREAM)
        assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (
            stream,
            NO_STREAM,
            2,
        )
        assert await store.stream_version(stream) == 2

    async def test_exact_version(self, store: EventStore) -> None:
        stream = _stream()
        await store.append(stream, [_note("a")], NO_STREAM)
        assert (await store.append(stream, [_note("b")], 1)).version == 2
        with pytest.raises(ConcurrencyError) as caught:
            await store.append(stream, [_note("c")], 1)
        assert (caught.value.expected, caught.value.actual) == (1, 2)
        with pytest.raises(ConcurrencyError):
            await store.append(_stream(), [_note("x")], 3)

    async def test_any_version(self, store: EventStore) -> None:
        stream = _stream()
        assert (await store.append(stream, [_note("a")], ANY)).version == 1
        assert (await store.append(stream, [_note("b"), _note("c")], ANY)).version == 3

    async def test_conflict_writes_nothing(self, store: EventStore) -> None:
        stream = _stream()
        await store.append(stream, [_note("a")])
        head = await store.head()
        with pytest.raises(ConcurrencyError):
            await store.append(stream, [_note("b"), _note("c")], 5)
        assert [getattr(r.event, "text", None) for r in await store.read_stream(stream)] == ["a"]
        assert await store.read_all(head) == []
        assert await store.stream_version(stream) == 1

    async def test_bad_arguments_are_rejected(self, store: EventStore) -> None:
        with pytest.raises(ValueError, match="stream id"):
            await store.append("", [_note("a")])
        with pytest.raises(ValueError, match="expected version"):
            await store.append(_stream(), [_note("a")], -7)
        stream = _stream()
        with pytest.raises(ValueError, match="twice"):
            await store.append_many([StreamAppend(stream, [_note("a")]), StreamAppend(stream, [])])
        with pytest.raises(UnknownEventType, match=r"contract\.Unregistered"):
            await store.append(_stream(), [_Unregistered()])

    async def test_nul_characters_are_refused_on_every_backend(self, store: EventStore) -> None:
        head = await store.head()
        with pytest.raises(ValueError, match="NUL"):
            await store.append("nul\x00stream", [_note("x")])
        with pytest.raises(ValueError, match="NUL"):
            await store.append(_stream(), [_note("a\x00b")])
        # A backslash followed by "u0000" is ordinary text, not a NUL.
        stream = _stream()
        written = await store.append(stream, [_note("C:\\u0000 is fine")])
        [recorded] = await store.read_stream(stream)
        assert getattr(recorded.event, "text", None) == "C:\\u0000 is fine"
        assert len(await read_through(store, head, written.position)) == 1

    # -- multi-stream appends ---------------------------------------------------------

    async def test_multi_stream_append_is_atomic(self, store: EventStore) -> None:
        first, second, third = _stream(), _stream(), _stream()
        await store.append(second, [_note("s1")])
        head = await store.head()
        with pytest.raises(ConcurrencyError) as caught:
            await store.append_many(
                [
                    StreamAppend(first, [_note("f1")], NO_STREAM),
                    StreamAppend(second, [_note("s2")], 7),
                    StreamAppend(third, [_note("t1")], NO_STREAM),
                ]
            )
        assert caught.value.stream_id == second
        assert await store.read_all(head) == []
        assert [await store.stream_version(s) for s in (first, second, third)] == [0, 1, 0]

        result = await store.append_many(
            [
                StreamAppend(third, [_note("t1"), _note("t2")], NO_STREAM),
                StreamAppend(second, [_note("s2")], 1),
                StreamAppend(first, [_note("f1")], NO_STREAM),
            ]
        )
        assert list(result.versions.items()) == [(third, 2), (second, 2), (first, 1)]
        written = await read_through(store, head, result.position)
        assert len(written) == 4
        assert result.position == written[-1].position
        assert {(r.stream_id, r.version) for r in written} == {
            (third, 1),
            (third, 2),
            (second, 2),
            (first, 1),
        }

    # -- concurrency ------------------------------------------------------------------

    async def test_concurrent_writers_on_one_stream(self, store: EventStore) -> None:
        stream = _stream()
        await store.append(stream, [_note("seed")], NO_STREAM)

        async def writer(n: int) -> int | None:
            version = await store.stream_version(stream)
            try:
                result = await store.append(stream, [_note(f"w{n}")], version)
            except ConcurrencyError:
                return None
            return result.version

        outcomes = await asyncio.gather(*(writer(n) for n in range(self.concurrent_writers)))
        won = sorted(v for v in outcomes if v is not None)
        lost = [v for v in outcomes if v is None]
        assert won, "at least one writer must succeed"
        assert len(won) + len(lost) == self.concurrent_writers
        recorded = await store.read_stream(stream)
        assert [r.version for r in recorded] == list(range(1, len(recorded) + 1))
        assert len(recorded) == 1 + len(won)
        assert won == list(range(2, len(recorded) + 1))

    # -- idempotency ------------------------------------------------------------------

    async def test_idempotent_append(self, store: EventStore) -> None:
        stream = _stream()
        key = uuid.uuid4().hex
        first = await store.append(stream, [_note("once")], idempotency=Idempotency(key, "x1"))
        assert not first.replayed
        again = await store.append(stream, [_note("twice")], idempotency=Idempotency(key, "x2"))
        assert again.replayed
        assert (again.versions, again.position, again.result_id) == (
            first.versions,
            first.position,
            "x1",
        )
        assert await store.stream_version(stream) == 1
        found = await store.find_idempotent(key)
        assert found is not None
        assert found.position == first.position
        assert await store.find_idempotent(uuid.uuid4().hex) is None

    async def test_idempotent_command_replay_survives_reopen(self, open_store: StoreOpener) -> None:
        def bus_on(store: EventStore) -> CommandBus:
            bus = CommandBus(Repository(store), [IdempotencyMiddleware(store)])
            bus.register(AddItem, _add_item)
            return bus

        store = await open_store(contract_registry())
        tally = uuid.uuid4().hex
        command = AddItem(tally_id=tally, name="tea")
        first = await bus_on(store).send(command)
        assert (first.aggregate_id, first.replayed) == (tally, False)
        head = first.position  # head() may not have reached it yet on PostgreSQL
        again = await bus_on(store).send(command)
        assert (again.aggregate_id, again.position, again.replayed) == (tally, first.position, True)
        reopened = await open_store(contract_registry())
        after_restart = await bus_on(reopened).send(command)
        assert (after_restart.position, after_restart.replayed) == (first.position, True)
        assert await reopened.read_all(head) == []
        assert await reopened.stream_version(Tally.stream_id_for(tally)) == 1
        # A new command id is a new command.
        await bus_on(reopened).send(AddItem(tally_id=tally, name="tea"))
        assert await reopened.stream_version(Tally.stream_id_for(tally)) == 2

    async def test_an_append_of_nothing_is_idempotent_too(self, store: EventStore) -> None:
        # A command that changes nothing still records its id, so a repeat is a replay.
        key = uuid.uuid4().hex
        first = await store.append_many([], idempotency=Idempotency(key, "same"))
        again = await store.append_many([], idempotency=Idempotency(key, "same"))
        assert (first.replayed, again.replayed) == (False, True)
        assert (again.versions, again.position, again.result_id) == ({}, first.position, "same")
        assert first.position == await store.head()

    async def test_concurrent_repeats_write_once(self, store: EventStore) -> None:
        stream = _stream()
        key = uuid.uuid4().hex
        results = await asyncio.gather(
            *(
                store.append(stream, [_note(f"r{n}")], ANY, idempotency=Idempotency(key, "id"))
                for n in range(10)
            )
        )
        assert sum(not r.replayed for r in results) == 1
        assert len({r.position for r in results}) == 1
        assert await store.stream_version(stream) == 1

    # -- the whole store against a model ----------------------------------------------

    @settings(
        max_examples=40,
        deadline=None,
        # One inherited test runs per backend class, hence several executors.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        operations=st.lists(
            st.tuples(
                st.integers(0, 2),  # stream
                st.sampled_from(["any", "no_stream", "exact", "stale"]),
                st.integers(0, 3),  # events in the append
            ),
            max_size=25,
        )
    )
    async def test_matches_a_simple_model(
        self, store: EventStore, operations: list[tuple[int, str, int]]
    ) -> None:
        streams = [_stream() for _ in range(3)]
        model: dict[str, list[str]] = {s: [] for s in streams}
        log: list[tuple[str, str]] = []
        head = last = await store.head()
        for step, (index, mode, count) in enumerate(operations):
            stream = streams[index]
            current = len(model[stream])
            expected = {
                "any": ANY,
                "no_stream": NO_STREAM,
                "exact": current if current else NO_STREAM,
                "stale": current + 1,
            }[mode]
            texts = [f"{step}.{i}" for i in range(count)]
            should_succeed = expected in (ANY, current)
            try:
                result = await store.append(stream, [_note(t) for t in texts], expected)
            except ConcurrencyError as exc:
                failure = (exc.stream_id, exc.actual)
                assert not should_succeed
                assert failure == (stream, current)
                continue
            assert should_succeed
            model[stream].extend(texts)
            log.extend((stream, t) for t in texts)
            assert result.version == len(model[stream])
            last = result.position
        for stream in streams:
            assert await store.stream_version(stream) == len(model[stream])
            assert [
                getattr(r.event, "text", None) for r in await store.read_stream(stream)
            ] == model[stream]
        seen = [
            (r.stream_id, getattr(r.event, "text", None))
            for r in await read_through(store, head, last)
            if r.stream_id in model
        ]
        assert seen == log
