"""The service's Prometheus metrics, labelled by *route*, never by the path a client typed.

BentoML 1.4 labels its request metrics with the raw URL path: every distinct path — a 404, a 401 — adds ~20 series
that are never dropped (3,000 unknown paths took /metrics from 1.8 to 19.6 MB and the process +52 MB). The service
turns BentoML's metrics off (``metrics.enabled: false`` in its config) and the front door counts requests here, by
the route that answered (``other`` for anything else), by method (``OTHER`` beyond the HTTP verbs) and by status
class: whatever is requested, the number of series is bounded by routes x methods x statuses.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
PREFIXES = ("/dashboard/", "/static_content/")  # mounted files and pages: one route each
CONTENT_TYPE = CONTENT_TYPE_LATEST


def status_class(status: int) -> str:
    """``2xx`` … ``5xx``: the series a status adds are the classes, whatever code a handler invents."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


class RequestMetrics:
    """Request counts, durations and requests in progress, per route template."""

    def __init__(self, routes: Iterable[str]) -> None:
        self.routes = frozenset(routes)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("cascade_radar_http_requests", "HTTP requests answered, by route, method and status class",
                                ["route", "method", "status"], registry=self.registry)
        self.duration = Histogram("cascade_radar_http_request_duration_seconds", "time to answer, by route", ["route"],
                                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
                                  registry=self.registry)
        self.in_progress = Gauge("cascade_radar_http_requests_in_progress", "requests being answered, by route", ["route"],
                                 registry=self.registry)

    def route_of(self, path: str) -> str:
        """The route template that answers ``path``: a declared route, a mounted prefix, or ``other``."""
        if path in self.routes:
            return path
        if path == "/dashboard":
            return "/dashboard/"
        for prefix in PREFIXES:
            if path.startswith(prefix):
                return prefix + "*"
        return "other"

    def started(self, path: str) -> tuple[str, float]:
        route = self.route_of(path)
        self.in_progress.labels(route).inc()
        return route, time.perf_counter()

    def finished(self, route: str, method: str, status: int, started_at: float) -> None:
        self.in_progress.labels(route).dec()
        self.requests.labels(route, method if method in METHODS else "OTHER", status_class(status)).inc()
        self.duration.labels(route).observe(time.perf_counter() - started_at)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
