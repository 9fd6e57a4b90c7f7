"""Projections: read models built from events, run by a runner with exactly-once effects.

>>> class OrderSummary(Projection[SqlUnitOfWork]):
...     name = "order_summary"
...     handles = (OrderPlaced,)
...     tables = ("orders",)
...     async def setup(self, uow): await uow.execute("CREATE TABLE {orders} (...)")
...     async def handle(self, events, uow): ...
>>> async with ProjectionRunner(event_store) as runner: ...
"""

from cqrskit.consistency import ConsistencyTimeout, WaitResult, wait_for
from cqrskit.projection.base import (
    FailurePolicy,
    Projection,
    ProjectionState,
    ProjectionStatus,
    RebuildProgress,
)
from cqrskit.projection.control import PublishedStatus, published_statuses, request_rebuild
from cqrskit.projection.leases import Lease, Leases, LocalLeases, PostgresLeases
from cqrskit.projection.metrics import ProjectionMetrics
from cqrskit.projection.runner import ProgressCallback, ProjectionRunner

__all__ = [
    "ConsistencyTimeout",
    "FailurePolicy",
    "Lease",
    "Leases",
    "LocalLeases",
    "PostgresLeases",
    "ProgressCallback",
    "Projection",
    "ProjectionMetrics",
    "ProjectionRunner",
    "ProjectionState",
    "ProjectionStatus",
    "PublishedStatus",
    "RebuildProgress",
    "WaitResult",
    "published_statuses",
    "request_rebuild",
    "wait_for",
]
