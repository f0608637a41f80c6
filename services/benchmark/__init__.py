"""Benchmark runner: model adapters, metrics, scoring and resumable runs (``prl bench``)."""
