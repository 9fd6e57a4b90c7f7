"""Read-your-writes: wait until a projection has caught up with a consistency token.

A command answers with a consistency token (``str(position)`` of its last event). A query
that carries the token calls :func:`wait_for` before reading, and either reads a model that
includes the write or learns (typed, not a bare ``False``) that it timed out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from cqrskit.errors import CqrsError
from cqrskit.store.base import Position

__all__ = ["CheckpointWaiter", "ConsistencyTimeout", "WaitResult", "wait_for"]


class CheckpointWaiter(Protocol):
    """What :func:`wait_for` needs: every read store provides it."""

    async def wait_for_checkpoint(
        self, projection: str, position: Position, timeout: float
    ) -> Position | None: ...


class ConsistencyTimeout(CqrsError):
    """A projection did not reach a consistency token within the timeout."""

    def __init__(self, result: WaitResult) -> None:
        self.result = result
        super().__init__(
            f"projection {result.projection!r} is at {result.checkpoint}, not yet at "
            f"{result.target} after {result.elapsed:.3f}s"
        )


@dataclass(frozen=True, slots=True)
class WaitResult:
    """The outcome of :func:`wait_for`: ``reached`` or timed out, and where things stand."""

    projection: str
    target: Position
    checkpoint: Position | None
    reached: bool
    elapsed: float

    def __bool__(self) -> bool:
        return self.reached

    def raise_if_timed_out(self) -> WaitResult:
        """Return self when reached; raise :class:`ConsistencyTimeout` otherwise."""
        if not self.reached:
            raise ConsistencyTimeout(self)
        return self


async def wait_for(
    store: CheckpointWaiter, projection: str, token: str | Position, timeout: float
) -> WaitResult:
    """Wait until ``projection``'s live checkpoint in ``store`` passes ``token``.

    Returns as soon as a checkpoint commit reaches it: woken in-process by the read store
    the runner commits through, and across processes by PostgreSQL LISTEN/NOTIFY or Redis
    pub/sub. ``token`` is a :class:`Position` or its string form; a malformed token raises
    ``ValueError``.
    """
    target = token if isinstance(token, Position) else Position.parse(token)
    started = time.perf_counter()
    checkpoint = await store.wait_for_checkpoint(projection, target, max(0.0, timeout))
    return WaitResult(
        projection=projection,
        target=target,
        checkpoint=checkpoint,
        reached=checkpoint is not None and checkpoint >= target,
        elapsed=time.perf_counter() - started,
    )
