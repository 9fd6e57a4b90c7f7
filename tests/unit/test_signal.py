"""The wake-up signal and the shared checkpoint-waiting loop built on it."""

from __future__ import annotations

import asyncio

from cqrskit._signal import Signal
from cqrskit.readstore.base import wait_with_signal
from cqrskit.store.base import Position


class Checkpoints:
    """A checkpoint reader that counts its reads."""

    def __init__(self, value: Position | None) -> None:
        self.value = value
        self.reads = 0

    async def __call__(self, projection: str) -> Position | None:
        self.reads += 1
        return self.value


async def test_a_waiter_sees_every_firing_it_slept_through() -> None:
    signal = Signal()
    first = signal.current()
    signal.fire({"a": 1})
    signal.fire()
    signal.fire({"b": 2})
    seen = []
    event = first
    while event.is_set():
        seen.append(dict(event.news))
        assert event.next is not None
        event = event.next
    assert seen == [{"a": 1}, {}, {"b": 2}]
    assert event is signal.current()


async def test_news_that_reaches_the_target_ends_the_wait_without_a_read() -> None:
    signal, read = Signal(), Checkpoints(Position(0, 1))
    wait = asyncio.create_task(wait_with_signal(signal, read, "p", Position(0, 5), 5.0))
    await asyncio.sleep(0.01)
    assert read.reads == 1
    # Both firings land before the waiter runs again: the second one's news still counts.
    signal.fire({"p": Position(0, 3)})
    signal.fire({"p": Position(0, 5)})
    assert await wait == Position(0, 5)
    assert read.reads == 1


async def test_news_below_the_target_or_about_others_needs_no_read() -> None:
    signal, read = Signal(), Checkpoints(Position(0, 1))
    wait = asyncio.create_task(wait_with_signal(signal, read, "p", Position(0, 5), 5.0))
    await asyncio.sleep(0.01)
    signal.fire({"p": Position(0, 3)})
    signal.fire({"other": Position(0, 9)})
    signal.fire({"p": None})
    await asyncio.sleep(0.01)
    assert not wait.done()
    assert read.reads == 1
    # A firing without news (a commit in this process, a reconnect) makes it read.
    read.value = Position(0, 6)
    signal.fire()
    assert await wait == Position(0, 6)
    assert read.reads == 2


async def test_a_timeout_reports_the_last_checkpoint_known() -> None:
    signal, read = Signal(), Checkpoints(Position(0, 1))
    wait = asyncio.create_task(wait_with_signal(signal, read, "p", Position(0, 5), 0.2))
    await asyncio.sleep(0.01)
    signal.fire({"p": Position(0, 4)})
    read.value = Position(0, 4)
    assert await wait == Position(0, 4)
