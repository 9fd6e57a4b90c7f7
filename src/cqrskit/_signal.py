"""A broadcast wake-up for asyncio waiters that cannot miss a signal."""

from __future__ import annotations

import asyncio


class Signal:
    """Wakes every task waiting at the moment it fires.

    A waiter takes :meth:`current` *before* it checks the condition it waits for, then
    waits on that event: a firing that lands between the check and the wait still wakes it.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        """The event the next :meth:`fire` sets."""
        return self._event

    def fire(self) -> None:
        """Wake everyone waiting now; later waiters wait for the next firing."""
        event, self._event = self._event, asyncio.Event()
        event.set()
