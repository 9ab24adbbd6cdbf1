"""Prometheus metrics of the control plane, in a registry of its own per app.

- ``meshpy_api_requests_total{method,route,status}`` and
  ``http_server_request_duration_seconds{http_request_method,http_route}``, counted by
  ``Metrics.middleware`` with the route template (``/api/v1/namespaces/{namespace}/...``)
  so the label set stays small;
- registry gauges refreshed at each scrape: ``meshpy_registry_up``,
  ``meshpy_registry_revision``, ``meshpy_registry_services``,
  ``meshpy_registry_instances{state}``, ``meshpy_registry_resources{kind}``;
- config distribution: ``meshpy_config_watchers``, ``meshpy_config_mesh_load_seconds``.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshpy.registry.models import INSTANCE_STATES
from meshpy.registry.repository import RegistryStats

__all__ = ["Metrics", "MetricsMiddleware"]


class Metrics:
    """The metric families of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "meshpy_api_requests",
            "REST API requests answered.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_server_request_duration_seconds",
            "Time to answer a REST API request.",
            ["http_request_method", "http_route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.up = Gauge(
            "meshpy_registry_up",
            "1 if the registry database answered the last scrape.",
            registry=self.registry,
        )
        self.revision = Gauge(
            "meshpy_registry_revision", "The registry's global revision.", registry=self.registry
        )
        self.services = Gauge(
            "meshpy_registry_services", "Registered services.", registry=self.registry
        )
        self.instances = Gauge(
            "meshpy_registry_instances",
            "Registered instances by state.",
            ["state"],
            registry=self.registry,
        )
        self.resources = Gauge(
            "meshpy_registry_resources",
            "Stored resources by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.watchers = Gauge(
            "meshpy_config_watchers",
            "Proxies waiting on a config long-poll now.",
            registry=self.registry,
        )
        self.mesh_load = Gauge(
            "meshpy_config_mesh_load_seconds",
            "Time the last read of the whole registry for snapshot building took.",
            registry=self.registry,
        )

    def observe_distribution(self, *, watchers: int, load_s: float) -> None:
        """Set the config distribution gauges."""
        self.watchers.set(watchers)
        self.mesh_load.set(load_s)

    def observe(self, stats: RegistryStats | None) -> None:
        """Set the registry gauges (None: the database did not answer)."""
        if stats is None:
            self.up.set(0)
            return
        self.up.set(1)
        self.revision.set(stats.revision)
        self.services.set(stats.services)
        for state in INSTANCE_STATES:
            self.instances.labels(state=state).set(stats.instances.get(state, 0))
        self.resources.clear()
        for kind, count in stats.resources.items():
            self.resources.labels(kind=kind).set(count)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method=method, route=template, status=str(status)).inc()
            self.metrics.duration.labels(http_request_method=method, http_route=template).observe(
                time.perf_counter() - start
            )
