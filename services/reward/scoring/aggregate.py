"""Aggregators: component values → one reward per sample (vectorised over the batch).

Every function gets ``raw: (S, K)`` values, ``scaled: (S, K)`` values mapped to [0, 1] by each
component's declared range, ``r̂ = clip((r − lo) / (hi − lo), 0, 1)``, and ``w: (S, K)``
weights (0 where a value is missing because its component failed). Missing values are thus
left out of the aggregate rather than counted as a real 0.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from services.reward.scoring.base import Aggregator, NoParams, aggregators


class MeanParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    eps: float = Field(default=1e-6, gt=0.0, le=1.0, description="floor ε on each r̂_k")
    scale: float = Field(default=1.0, gt=0.0, le=1e6, description="multiplies the result")


def _register(name: str, params: type[BaseModel] = NoParams):  # type: ignore[no-untyped-def]
    def add(fn):  # type: ignore[no-untyped-def]
        aggregators.register(name)(Aggregator(name, (fn.__doc__ or "").strip(), params, fn))
        return fn

    return add


def _sum_w(w: np.ndarray) -> np.ndarray:
    return w.sum(axis=1)


@_register("harmonic", MeanParams)
def harmonic(raw: np.ndarray, scaled: np.ndarray, w: np.ndarray, p: MeanParams) -> np.ndarray:
    """Weighted harmonic mean of scaled components (DEVA default):
    H = scale · Σ_k w_k / Σ_k (w_k / max(r̂_k, ε)). Any component near 0 pulls H near 0."""
    return p.scale * _sum_w(w) / (w / np.maximum(scaled, p.eps)).sum(axis=1)


@_register("geometric", MeanParams)
def geometric(raw: np.ndarray, scaled: np.ndarray, w: np.ndarray, p: MeanParams) -> np.ndarray:
    """Weighted geometric mean of scaled components:
    G = scale · exp(Σ_k w_k · ln max(r̂_k, ε) / Σ_k w_k)."""
    return p.scale * np.exp((w * np.log(np.maximum(scaled, p.eps))).sum(axis=1) / _sum_w(w))


@_register("sum")
def total(raw: np.ndarray, scaled: np.ndarray, w: np.ndarray, p: object) -> np.ndarray:
    """Weighted sum of *raw* (unscaled) components: S = Σ_k w_k · r_k. With unit weights this
    is the trl peers' total (Visual-RFT, VLM-R1, R1-V: ``rewards_per_func.sum(dim=1)``)."""
    return (w * raw).sum(axis=1)


@_register("mean")
def mean(raw: np.ndarray, scaled: np.ndarray, w: np.ndarray, p: object) -> np.ndarray:
    """Arithmetic mean of raw components, weights ignored except that missing ones are left
    out: A = Σ_k [w_k > 0] · r_k / Σ_k [w_k > 0]."""
    present = (w > 0).astype(np.float64)
    return (present * raw).sum(axis=1) / present.sum(axis=1)


@_register("weighted")
def weighted(raw: np.ndarray, scaled: np.ndarray, w: np.ndarray, p: object) -> np.ndarray:
    """Weighted arithmetic mean of scaled components: W = Σ_k w_k · r̂_k / Σ_k w_k ∈ [0, 1]."""
    return (w * scaled).sum(axis=1) / _sum_w(w)


@_register("min")
def minimum(raw: np.ndarray, scaled: np.ndarray, w: np.ndarray, p: object) -> np.ndarray:
    """Minimum of scaled components over those with w_k > 0: m = min_k r̂_k ∈ [0, 1]."""
    return np.where(w > 0, scaled, np.inf).min(axis=1)


def scale(raw: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``r̂ = clip((r − lo) / (hi − lo), 0, 1)`` column-wise; ``lo, hi: (K,)``."""
    return np.clip((raw - lo) / (hi - lo), 0.0, 1.0)
