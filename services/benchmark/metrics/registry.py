"""The metric registry: a metric turns the stored per-sample records of a run into numbers.

A metric is a function ``(records, *, n_boot, seed, **params) -> list[MetricValue]``; it may
return several values (COCO's 12 stats, gIoU and cIoU, ...). Tasks name the metrics they
report (``Task.metrics``); :func:`compute_metrics` resolves and runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from services.benchmark.records import EvalRecord, MetricValue
from services.common.registry import Registry


class Metric(Protocol):
    def __call__(
        self, records: Sequence[EvalRecord], *, n_boot: int, seed: int, **params: Any
    ) -> list[MetricValue]: ...


metrics: Registry[Metric] = Registry(
    "metric",
    builtins=tuple(f"services.benchmark.metrics.{m}" for m in ("boxes", "coco", "labels", "masks")),
)


MetricRef = str | Mapping[str, Any]
"""A metric name, or ``{"name": ..., "params": {...}}``."""


def _split_ref(ref: MetricRef) -> tuple[str, dict[str, Any]]:
    if isinstance(ref, str):
        return ref, {}
    return str(ref["name"]), dict(ref.get("params") or {})


def compute_metrics(
    refs: Sequence[MetricRef],
    records: Sequence[EvalRecord],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[MetricValue]:
    """Run each referenced metric on ``records``; names must be unique across the results."""
    out: list[MetricValue] = []
    for ref in refs:
        name, params = _split_ref(ref)
        n_boot_m = int(params.pop("n_boot", n_boot))
        out.extend(metrics.get(name)(records, n_boot=n_boot_m, seed=seed, **params))
    names = [m.name for m in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(
            f"metrics produced duplicate names {dup}; give them distinct params/prefixes"
        )
    return out
