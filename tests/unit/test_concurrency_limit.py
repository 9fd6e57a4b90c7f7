"""ConcurrencyLimit: at most N messages at once, the rest in arrival order; nested sends
never wait for their parent; a failed or cancelled message gives its place back."""

from __future__ import annotations

import asyncio

import pytest

from cqrskit import ConcurrencyLimit, Query, QueryBus


class Work(Query):
    name: str
    seconds: float = 0.01


class Nested(Query):
    depth: int


class Limited:
    """A bus with one limit, recording how many handlers run at once and in what order
    they started."""

    def __init__(self, limit: int) -> None:
        self.limit = ConcurrencyLimit(limit)
        self.bus = QueryBus([self.limit])
        self.running = self.most = 0
        self.started: list[str] = []
        self.bus.register(Work, self.work)
        self.bus.register(Nested, self.nested)

    async def work(self, query: Work) -> str:
        self.running += 1
        self.most = max(self.most, self.running)
        self.started.append(query.name)
        try:
            await asyncio.sleep(query.seconds)
            if query.name.startswith("fail"):
                raise RuntimeError(query.name)
            return query.name
        finally:
            self.running -= 1

    async def nested(self, query: Nested) -> str:
        if query.depth == 0:
            return "bottom"
        # Also from a task of its own: it starts with the parent's context.
        inner = asyncio.create_task(self.bus.ask(Nested(depth=query.depth - 1)))
        return await self.bus.ask(Nested(depth=query.depth - 1)) + await inner


async def test_at_most_the_limit_run_at_once_and_all_finish() -> None:
    limited = Limited(3)
    names = [f"w{n}" for n in range(12)]

    answers = await asyncio.gather(*(limited.bus.ask(Work(name=n)) for n in names))

    assert answers == names
    assert limited.most == 3


async def test_waiting_messages_start_in_the_order_they_came() -> None:
    limited = Limited(1)
    names = [f"w{n}" for n in range(8)]
    tasks = []
    for name in names:
        tasks.append(asyncio.create_task(limited.bus.ask(Work(name=name))))
        await asyncio.sleep(0)  # each arrives before the next

    await asyncio.gather(*tasks)

    assert limited.started == names


async def test_nested_sends_do_not_wait_for_their_parent() -> None:
    limited = Limited(1)

    answer = await asyncio.wait_for(limited.bus.ask(Nested(depth=3)), timeout=5)

    assert answer == "bottom" * 8


async def test_a_failed_message_gives_its_place_back() -> None:
    limited = Limited(1)

    with pytest.raises(RuntimeError, match="fail-1"):
        await limited.bus.ask(Work(name="fail-1"))

    assert await asyncio.wait_for(limited.bus.ask(Work(name="after")), timeout=5) == "after"


async def test_a_message_cancelled_while_waiting_takes_no_place() -> None:
    limited = Limited(1)
    holder = asyncio.create_task(limited.bus.ask(Work(name="holder", seconds=0.05)))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(limited.bus.ask(Work(name="gave-up")))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await holder

    assert await asyncio.wait_for(limited.bus.ask(Work(name="next")), timeout=5) == "next"
    assert "gave-up" not in limited.started
    assert waiter.cancelled()


def test_one_limit_serves_one_bus_on_several_event_loops() -> None:
    limited = Limited(1)

    async def three_at_once() -> list[str]:
        # Two of them wait: an asyncio.Semaphore binds to the loop it first waits on, so
        # one shared by both loops would fail on the second.
        return await asyncio.gather(*(limited.bus.ask(Work(name=f"w{n}")) for n in range(3)))

    for _ in range(2):
        assert asyncio.run(three_at_once()) == ["w0", "w1", "w2"]


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be >= 1"):
        ConcurrencyLimit(limit)


@pytest.mark.parametrize("limit", [1.5, True, "4", None])
def test_a_limit_that_is_not_an_int_is_refused(limit: object) -> None:
    with pytest.raises(TypeError, match="limit must be an int >= 1"):
        ConcurrencyLimit(limit)  # type: ignore[arg-type]
