"""The service runs at most ``ORDERS_MAX_CONCURRENT_COMMANDS`` commands at once; the rest
wait their turn (cqrskit's ConcurrencyLimit, outermost on the command bus)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orders.application.commands import RegisterCustomer
from orders.bootstrap import open_services
from orders.settings import Settings


@pytest.mark.parametrize("limit", [1, 3])
async def test_commands_beyond_the_limit_wait_their_turn(tmp_path: Path, limit: int) -> None:
    settings = Settings(data_dir=tmp_path, max_concurrent_commands=limit)
    async with open_services(settings, run_projections=False) as services:
        store: Any = services.event_store
        append_many = store.append_many
        in_flight = most = 0

        async def slow_append(*args: Any, **kwargs: Any) -> Any:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                await asyncio.sleep(0.02)  # as a slow disk would
                return await append_many(*args, **kwargs)
            finally:
                in_flight -= 1

        store.append_many = slow_append
        commands = [RegisterCustomer(name=f"C {n}", email=f"c{n}@example.com") for n in range(6)]

        results = await asyncio.gather(*(services.command_bus.send(c) for c in commands))

    assert len({r.aggregate_id for r in results}) == 6
    assert most == limit


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_concurrent_commands"):
        Settings(max_concurrent_commands=0)
