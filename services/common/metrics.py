"""Prometheus metrics, one registry per app (so several apps can live in one process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ServiceMetrics:
    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        labels = ["route", "method", "status"]
        self.requests = Counter(
            "prl_http_requests", "HTTP requests by route and status", labels, registry=self.registry
        )
        self.latency = Histogram(
            "prl_http_request_duration_seconds",
            "HTTP request latency by route and status",
            labels,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "prl_http_in_flight", "requests being served (queue depth)", registry=self.registry
        )
        self.rejected = Counter(
            "prl_http_rejected",
            "requests refused before handling",
            ["reason"],
            registry=self.registry,
        )
        self.draining = Gauge(
            "prl_server_draining", "1 while the server drains for shutdown", registry=self.registry
        )
