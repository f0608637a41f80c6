"""Benchmark metrics (see :mod:`services.benchmark.metrics.registry`)."""

from services.benchmark.metrics.registry import Metric, MetricRef, compute_metrics, metrics

__all__ = ["Metric", "MetricRef", "compute_metrics", "metrics"]
