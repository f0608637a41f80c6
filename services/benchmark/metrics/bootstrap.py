"""Nonparametric bootstrap over samples (Efron & Tibshirani, 1993).

Resample the n evaluation units with replacement B times, recompute the statistic on each
resample θ*_b, and report

    stderr = std(θ*_1..B, ddof=1),   CI = [q_{α/2}(θ*), q_{1-α/2}(θ*)]   (percentile interval).

The resampling indices come from ``numpy.random.default_rng(seed)``, so a metric's interval is a
pure function of its inputs and the seed (lmms-eval reports only the stderr; we keep both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_N_BOOT = 1000
DEFAULT_ALPHA = 0.05
_CHUNK_CELLS = 4_000_000  # resample at most this many indices at once (memory bound)


@dataclass(frozen=True)
class Interval:
    stderr: float | None
    low: float | None
    high: float | None


NO_INTERVAL = Interval(None, None, None)


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` int64 indices drawn uniformly with replacement from ``range(n)``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def _summarise(stats: np.ndarray, alpha: float) -> Interval:
    stats = stats[np.isfinite(stats)]
    if stats.size < 2:
        return NO_INTERVAL
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return Interval(float(np.std(stats, ddof=1)), float(low), float(high))


def _chunked(n: int, n_boot: int, seed: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply a vectorised ``fn(idx: (b, n)) -> (b,)`` over all B resamples, chunk by chunk."""
    idx = resample_indices(n, n_boot, seed)
    rows = max(1, _CHUNK_CELLS // max(n, 1))
    return np.concatenate([fn(idx[i : i + rows]) for i in range(0, n_boot, rows)])


def bootstrap_mean(
    values: np.ndarray, *, n_boot: int = DEFAULT_N_BOOT, alpha: float = DEFAULT_ALPHA, seed: int = 0
) -> Interval:
    """Interval of the mean of ``values`` (shape ``(n,)``)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or n_boot < 2:
        return NO_INTERVAL
    return _summarise(
        _chunked(values.size, n_boot, seed, lambda ix: values[ix].mean(axis=1)), alpha
    )


def bootstrap_ratio(
    num: np.ndarray,
    den: np.ndarray,
    *,
    eps: float = 0.0,
    n_boot: int = DEFAULT_N_BOOT,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> Interval:
    """Interval of ``Σ num / (Σ den + eps)`` with paired resampling (e.g. LISA's cIoU)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    if num.size < 2 or n_boot < 2:
        return NO_INTERVAL

    def ratio(ix: np.ndarray) -> np.ndarray:
        d = den[ix].sum(axis=1) + eps
        with np.errstate(divide="ignore", invalid="ignore"):
            return num[ix].sum(axis=1) / d

    return _summarise(_chunked(num.size, n_boot, seed, ratio), alpha)


def bootstrap_statistic(
    n: int,
    statistic: Callable[[np.ndarray], float],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> Interval:
    """Interval of an arbitrary ``statistic(indices: (n,)) -> float`` (one call per resample).

    For expensive statistics (COCO mAP re-evaluated per resample); use small ``n_boot``.
    """
    if n < 2 or n_boot < 2:
        return NO_INTERVAL
    idx = resample_indices(n, n_boot, seed)
    return _summarise(np.array([statistic(row) for row in idx], dtype=np.float64), alpha)
