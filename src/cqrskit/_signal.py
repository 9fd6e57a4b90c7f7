"""A broadcast wake-up for asyncio waiters that cannot miss a signal."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any


class Firing(asyncio.Event):
    """The event one firing of a :class:`Signal` sets.

    ``news`` is what that firing said (e.g. ``{"orders": Position(...)}``: projection
    orders' live checkpoint reached this), empty for a plain wake-up. ``next`` is the
    event of the firing after it, so a waiter that comes back later can go through every
    firing it slept through (``next`` is set before the event is).
    """

    def __init__(self) -> None:
        super().__init__()
        self.news: Mapping[str, Any] = {}
        self.next: Firing | None = None


class Signal:
    """Wakes every task waiting at the moment it fires.

    A waiter takes :meth:`current` *before* it checks the condition it waits for, then
    waits on that event: a firing that lands between the check and the wait still wakes it.
    """

    def __init__(self) -> None:
        self._event = Firing()

    def current(self) -> Firing:
        """The event the next :meth:`fire` sets."""
        return self._event

    def fire(self, news: Mapping[str, Any] | None = None) -> None:
        """Wake everyone waiting now, telling them ``news``; later waiters wait for the
        next firing."""
        event = self._event
        self._event = event.next = Firing()
        if news:
            event.news = news
        event.set()
