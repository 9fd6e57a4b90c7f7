"""HTTP metrics for Prometheus, and ``GET /metrics`` serving them with everything else in
the same registry (the projection runner's metrics included, when it is given it)."""

from __future__ import annotations

import time
from typing import Final

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HttpMetrics", "install_metrics"]

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNMATCHED: Final = "<unmatched>"


class HttpMetrics:
    """Requests by method, route template and status, and their latency, in ``registry``.

    Labels use the route's path template (``/orders/{order_id}``), never the raw path, and
    unknown methods count as ``OTHER``, so that clients cannot make label values without end.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "cqrskit_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "cqrskit_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        """Count one answered request."""
        method = scope.get("method", "")
        method = method if method in _METHODS else "OTHER"
        route = getattr(scope.get("route"), "path", _UNMATCHED)
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


class _MetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the server answers when the app raises before starting one

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, watched_send)
        finally:
            self.metrics.observe(scope, status, time.perf_counter() - started)


def install_metrics(
    app: FastAPI, registry: CollectorRegistry, *, path: str = "/metrics"
) -> HttpMetrics:
    """Measure every request of ``app`` into ``registry`` and serve ``GET <path>``.

    Pass the same registry to ``ProjectionRunner(registry=...)`` so that one scrape shows
    the HTTP and the projection metrics. Call it before the app starts.
    """
    metrics = HttpMetrics(registry)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)

    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(path, prometheus_metrics, methods=["GET"], include_in_schema=False)
    return metrics
