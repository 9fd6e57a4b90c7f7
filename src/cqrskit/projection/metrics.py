"""Prometheus metrics of a projection runner, in a registry the runner owns or is given."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ProjectionMetrics"]


class ProjectionMetrics:
    """Events processed, batch latency, lag (events and seconds), parked events, faults.

    Pass ``registry`` to expose them with the rest of your metrics; by default they go
    to a fresh registry of their own, so two runners (or two tests) never collide.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ["projection"]
        self.events_processed = Counter(
            "cqrskit_projection_events_processed",
            "Events committed by a projection (handled or passed over).",
            labels,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "cqrskit_projection_batch_seconds",
            "Time to handle and commit one batch.",
            labels,
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.lag_events = Gauge(
            "cqrskit_projection_lag_events",
            "Events written but not yet projected (approximate).",
            labels,
            registry=self.registry,
        )
        self.lag_seconds = Gauge(
            "cqrskit_projection_lag_seconds",
            "Age of the newest projected event while the projection is behind; 0 when live.",
            labels,
            registry=self.registry,
        )
        self.parked = Gauge(
            "cqrskit_projection_parked_events",
            "Events parked (dead-lettered) by the projection's live version.",
            labels,
            registry=self.registry,
        )
        self.faults = Counter(
            "cqrskit_projection_faults",
            "Times a projection stopped as faulted.",
            labels,
            registry=self.registry,
        )
