"""Prometheus metrics of the service (``GET /metrics``), through ``prometheus_client``.

Modelled on text-embeddings-inference's ``te_*`` and Ray Serve's ``serve_*`` sets: request
counts by route and status with a latency histogram (what an SLO is written against), the
batcher's own view (statements scored, batch sizes, batch and queue times, queue depth) to
see whether micro-batching works, and rejections by reason to tell overload (``queue_full``)
from bad clients (``invalid``, ``too_large``, ``unauthorized``).

Each app gets its own ``CollectorRegistry``: two apps in one process (tests, or the demo's
embedding code) must not share or clash over global metrics. Routes are labelled by their
template (``/v1/classify``; every demo path as ``/demo``; anything else ``other``) so a
client cannot create label values at will.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
KNOWN_ROUTES = frozenset({"/", "/v1/classify", "/v1/model", "/health", "/ready", "/metrics",
                          "/docs", "/openapi.json"})
REJECT_REASONS = ("queue_full", "too_large", "invalid", "unauthorized", "timeout", "loading",
                  "failed_batch")


class ServiceMetrics:
    """The service's metrics in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "detente_requests", "HTTP requests by route, method and status code.",
            ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            "detente_request_duration_seconds", "Time from request to response, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.statements = Counter(
            "detente_statements", "Statements answered: scored, or kept in place with an "
            "error (an empty text).", ["result"], registry=r)
        self.batch_size = Histogram(
            "detente_batch_size", "Statements per model batch (micro-batching at work: "
            "mostly 1 means requests did not overlap).", buckets=BATCH_BUCKETS, registry=r)
        self.batch_duration = Histogram(
            "detente_batch_duration_seconds", "Model time per batch.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.queue_duration = Histogram(
            "detente_queue_duration_seconds", "Time a request waited for its batch to start.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge(
            "detente_queue_depth", "Statements waiting for a batch.", registry=r)
        self.rejected = Counter(
            "detente_rejected_requests", "Requests refused or failed, by reason.", ["reason"],
            registry=r)
        self.ready = Gauge("detente_model_ready", "1 once the model is loaded.", registry=r)
        self.model = Info("detente_model", "The model being served.", registry=r)
        for reason in REJECT_REASONS:  # every reason shows as 0 from the start
            self.rejected.labels(reason)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def route_label(path: str) -> str:
    """A bounded label for a request path."""
    if path in KNOWN_ROUTES:
        return path
    if path == "/demo" or path.startswith("/demo/"):
        return "/demo"
    return "other"


class RequestMetricsMiddleware:
    """Counts and times every request (pure ASGI: streaming responses pass untouched)."""

    def __init__(self, app, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def record_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            self.metrics.observe_request(route_label(scope["path"]), scope["method"], status,
                                         time.perf_counter() - started)
