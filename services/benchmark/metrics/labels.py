"""Metrics that average the reward service's per-sample components.

Scoring goes through the reward service (HTTP or in-process, same code), so the benchmark and
the trainer share one definition of ``accuracy`` (exact normalised match against the label or
its synonyms; an empty answer never matches) and of DiG's ``f1`` / ``miou`` (Hungarian
matching; docs/rewards.md). A sample whose component is missing (the answer did not parse) counts 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from services.benchmark.metrics.boxes import _mean_metric
from services.benchmark.metrics.registry import metrics
from services.benchmark.records import EvalRecord, MetricValue


def component_values(records: Sequence[EvalRecord], name: str) -> np.ndarray:
    """``(n,)`` values of component ``name``; 0 where a record lacks it.

    Raises when no record has it at all: the task's reward preset does not compute it, and a
    silent 0 would publish a wrong number.
    """
    if records and not any(name in r.components for r in records):
        raise ValueError(
            f"no record has reward component {name!r}; score the run with a reward preset that "
            "includes it"
        )
    return np.array([float(r.components.get(name, 0.0)) for r in records], dtype=np.float64)


@metrics.register("accuracy")
def accuracy(
    records: Sequence[EvalRecord], *, n_boot: int, seed: int, prefix: str = ""
) -> list[MetricValue]:
    """Classification accuracy = (1/N) Σ_i accuracy_i (the reward component, 0 or 1)."""
    return [_mean_metric(f"{prefix}accuracy", component_values(records, "accuracy"), n_boot, seed)]


@metrics.register("dig_f1_miou")
def dig_f1_miou(
    records: Sequence[EvalRecord], *, n_boot: int, seed: int, prefix: str = "dig/"
) -> list[MetricValue]:
    """DiG: mean over samples of the per-sample F1 and mIoU after Hungarian matching."""
    return [
        _mean_metric(f"{prefix}f1", component_values(records, "f1"), n_boot, seed),
        _mean_metric(f"{prefix}miou", component_values(records, "miou"), n_boot, seed),
    ]


@metrics.register("mean_reward")
def mean_reward(
    records: Sequence[EvalRecord],
    *,
    n_boot: int,
    seed: int,
    prefix: str = "",
    spec: str | None = None,
    spec_hash: str | None = None,
) -> list[MetricValue]:
    """Mean aggregated reward and the fraction of samples with a scoring error (lower better).

    With ``spec`` (the reward spec's name, see :mod:`services.benchmark.reward_key`) the mean is
    named ``{prefix}reward[{spec}]`` and carries the spec's name and hash, so means of different
    rewards (DEVA's harmonic ∈ [0, 0.3] on DiG, ``dig``'s sum ∈ [0, 3]) are never ranked together.
    """
    rewards = np.array([r.reward for r in records], dtype=np.float64)
    errors = np.array([r.error is not None for r in records], dtype=np.float64)
    name = f"{prefix}reward" if spec is None else f"{prefix}reward[{spec}]"
    mean = dataclasses.replace(
        _mean_metric(name, rewards, n_boot, seed), reward_spec=spec, reward_spec_hash=spec_hash
    )
    return [
        mean,
        MetricValue(
            f"{prefix}error_rate",
            float(errors.mean()) if errors.size else 0.0,
            False,
            n=len(records),
        ),
    ]
