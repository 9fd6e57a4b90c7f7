"""SQLite-specific behaviour: other processes writing the same file."""

import asyncio
from pathlib import Path

from cqrskit.store import SqliteEventStore
from cqrskit.testing import Noted, contract_registry


async def test_appends_through_another_handle_wake_waiters_by_polling(tmp_path: Path) -> None:
    # Two handles on one file stand for two processes: they share no in-process wake-up.
    reader = await SqliteEventStore.open(tmp_path / "e.db", contract_registry(), poll_interval=0.1)
    writer = await SqliteEventStore.open(tmp_path / "e.db", contract_registry())
    try:
        head = await reader.head()
        waiter = asyncio.create_task(reader.wait_for_events(head, timeout=10))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        loop = asyncio.get_running_loop()
        await writer.append("other-process", [Noted(text="x")])
        appended = loop.time()
        assert await waiter is True
        assert loop.time() - appended < 1.0  # the poll interval, not the 10 s timeout
        [recorded] = await reader.read_all(head)
        assert recorded.stream_id == "other-process"
    finally:
        await reader.close()
        await writer.close()
