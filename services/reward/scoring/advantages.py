"""Advantage estimators over GRPO groups (each group: the G rewards of one prompt).

``std`` is always the sample standard deviation (ddof = 1); a group of one has std 0.
"""

from __future__ import annotations

import math
from operator import mul

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from services.reward.scoring.base import Estimator, NoParams, advantages


class EpsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    eps: float = Field(
        default=1e-4, gt=0.0, le=1.0, description="added to the std (1e-4 as the trl peers)"
    )


def sample_std(r: np.ndarray) -> float:
    """Sample standard deviation √(Σ (r_i − r̄)² / (G − 1)); 0 for fewer than two values.

    Plain Python on the G values: a GRPO group is small, and numpy's call overhead would
    dominate."""
    n = r.size
    if n < 2:
        return 0.0
    values = r.tolist()
    m = math.fsum(values) / n
    d = [v - m for v in values]
    return math.sqrt(math.fsum(map(mul, d, d)) / (n - 1))


def _register(name: str, params: type[BaseModel] = NoParams):  # type: ignore[no-untyped-def]
    def add(fn):  # type: ignore[no-untyped-def]
        advantages.register(name)(Estimator(name, (fn.__doc__ or "").strip(), params, fn))
        return fn

    return add


@_register("grpo", EpsParams)
def grpo(groups: list[np.ndarray], p: EpsParams) -> list[np.ndarray]:
    """GRPO (Shao et al. 2024): A_i = (r_i − mean(r)) / (std(r) + ε), per group, sample std.
    Same as the trl-based peers (Visual-RFT, VLM-R1: ``(r − mean) / (std + 1e-4)``)."""
    return [(r - r.mean()) / (sample_std(r) + p.eps) for r in groups]


@_register("dr_grpo")
def dr_grpo(groups: list[np.ndarray], p: object) -> list[np.ndarray]:
    """Dr. GRPO (Liu et al. 2025): A_i = r_i − mean(r), no std normalisation."""
    return [r - r.mean() for r in groups]


@_register("batch", EpsParams)
def batch(groups: list[np.ndarray], p: EpsParams) -> list[np.ndarray]:
    """Group-centred, batch-scaled (TRL ``scale_rewards="batch"``):
    A_i = (r_i − mean(group)) / (std(all rewards of the batch) + ε)."""
    std = sample_std(np.concatenate(groups)) if groups else 0.0
    return [(r - r.mean()) / (std + p.eps) for r in groups]


@_register("rloo")
def rloo(groups: list[np.ndarray], p: object) -> list[np.ndarray]:
    """RLOO (Ahmadian et al. 2024): A_i = r_i − mean_{j≠i} r_j = G/(G−1)·(r_i − mean(r));
    0 for a group of one."""
    out = []
    for r in groups:
        g = r.size
        out.append(r - r.mean() if g < 2 else (r - r.mean()) * (g / (g - 1)))
    return out
