"""Decoding pages holds off the cyclic garbage collector without changing the process's
collector settings, and never undoes an application's ``gc.freeze()``."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from cqrskit.projection.testing import Ticked, tick_registry
from cqrskit.store import _common
from cqrskit.store._common import StoredRow, collector_paused, decode_page


@pytest.fixture
def collector() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()
        if not was_enabled:
            gc.disable()


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.mark.parametrize("objects", [0, 1_000_000])
def test_the_collector_is_paused_inside_and_back_after(collector: None, objects: int) -> None:
    with collector_paused(objects):
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    with collector_paused(objects):
        pass
    assert not gc.isenabled()


def test_promoting_a_large_block_keeps_the_applications_frozen_objects(collector: None) -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    with collector_paused(1_000_000):
        kept = [object() for _ in range(10)]
    assert gc.get_freeze_count() == frozen
    assert kept


def test_garbage_made_before_a_large_block_is_still_collected(collector: None) -> None:
    gc.collect()
    node = Node()
    ref = id(node)
    del node
    # The young generations are collected before the block's objects are promoted, so a
    # cycle that was already garbage does not get carried into the oldest generation.
    with collector_paused(1_000_000):
        pass
    assert all(id(o) != ref for o in gc.get_objects())
    assert gc.get_freeze_count() == 0


def test_cycles_promoted_with_a_page_are_still_freed_while_pages_keep_coming(
    collector: None,
) -> None:
    # Objects alive during a large block are promoted with it; those that become cyclic
    # garbage afterwards must not stay forever while promotions keep resetting the
    # counts that would start a full collection.
    gc.collect()
    refs: list[weakref.ref[Node]] = []
    for _ in range(40):
        in_flight = [Node() for _ in range(20)]
        refs += [weakref.ref(node) for node in in_flight]
        with collector_paused(1_000_000):
            page = [[i] for i in range(100)]
        del in_flight, page
    alive = sum(ref() is not None for ref in refs)
    assert alive <= 10 * 20, f"{alive} of {len(refs)} garbage cycles never collected"


def test_decoding_pauses_the_collector_for_pages_but_not_for_a_few_events(
    collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pausing costs more than it spares when a decode allocates less than one
    # young-generation pass waits for (an aggregate's tail, a live batch).
    registry = tick_registry()
    stored = registry.encode(Ticked(label="x"))
    now = datetime.now(UTC)
    rows: list[StoredRow] = [
        ("s", n, 0, n, stored.event_type, 1, stored.data, stored.metadata, now)
        for n in range(1, 101)
    ]
    pauses: list[int] = []

    def spied(objects: int = 0) -> object:
        pauses.append(objects)
        return collector_paused(objects)

    monkeypatch.setattr(_common, "collector_paused", spied)
    assert len(decode_page(registry, rows[:10])) == 10
    assert pauses == []
    assert len(decode_page(registry, rows)) == 100
    assert pauses == [1100]
