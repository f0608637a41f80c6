"""Fitting the ``learned`` aggregator (:mod:`services.reward.scoring.learned`) with scipy.

Two losses over the smooth min–max network ``y(x)`` (parameters θ = (a, b, log β)):

* regression on per-sample targets ``t ∈ [0, 1]`` (e.g. the suite's per-sample F1):
  ``L(θ) = (1/N) Σ_n (y(x_n) − t_n)² + λ · mean(exp(2a))``;
* Bradley–Terry on preference pairs (``x⁺`` preferred to ``x⁻``), temperature τ:
  ``L(θ) = (1/P) Σ_p −log σ((y(x⁺_p) − y(x⁻_p)) / τ) + λ · mean(exp(2a))``; the fitted network
  is then calibrated (offset, gain) so that its outputs on the training inputs span [0, 1].

Both are minimised with L-BFGS-B (``scipy.optimize.minimize``) on the analytic gradient from
a few random starts; the best start wins. Why scipy rather than torch: the network has a few
dozen parameters and the data are at most a few hundred thousand rows, so full-batch
quasi-Newton converges to a tight optimum in well under a second on CPU, deterministically
for a seed, and neither the fitting command nor the torch-free reward service needs torch.

Gradient (backpropagation through the soft minimum and maximum; ``q = softmax_j(−βz)``,
``p = softmax_g(βm)``, ``g_n = ∂L/∂y_n``):
``∂L/∂b_gj = Σ_n g_n p_ng q_ngj``, ``∂L/∂a_gjk = Σ_n g_n p_ng q_ngj x_nk · exp(a_gjk)``,
``∂L/∂log β = Σ_n g_n (Σ_g p_ng Σ_j q_ngj z_ngj − y_n)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import minimize
from scipy.special import expit, log_expit, logsumexp, softmax

from services.reward.scoring.learned import FORMAT, MAX_LOG, ModelFile, SmoothMinMax

MIN_SAMPLES = 20
"""Fewest training rows (or pairs) a fit accepts."""


class FitConfig(BaseModel):
    """Size of the network and settings of the optimiser."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: int = Field(default=2, ge=1, le=16, description="G, groups (soft-maximum terms)")
    units: int = Field(default=8, ge=1, le=16, description="J, linear units per group (soft-min)")
    restarts: int = Field(default=4, ge=1, le=64, description="random starts; the best is kept")
    seed: int = Field(default=0, description="seed of the starts and of the holdout split")
    l2: float | None = Field(
        default=None,
        ge=0.0,
        le=10.0,
        description="λ, penalty on mean(exp(2a)); default 1e-4 for MSE, 1e-2 for Bradley–Terry "
        "(whose loss keeps falling as the utility's scale grows, so it needs the stronger one)",
    )
    temperature: float = Field(
        default=0.1, gt=0.0, le=10.0, description="τ of the Bradley–Terry loss"
    )
    holdout: float = Field(
        default=0.2, ge=0.0, lt=1.0, description="fraction of rows kept out of the fit to report"
    )
    max_iter: int = Field(default=3000, ge=10, le=100_000, description="L-BFGS-B iterations")


@dataclass(frozen=True)
class Shape:
    groups: int
    units: int
    inputs: int

    @property
    def size(self) -> int:
        return self.groups * self.units * (self.inputs + 1) + 1

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """θ → ``a: (G, J, K)``, ``b: (G, J)``, ``log β``."""
        g, j, k = self.groups, self.units, self.inputs
        a = theta[: g * j * k].reshape(g, j, k)
        b = theta[g * j * k : g * j * (k + 1)].reshape(g, j)
        return a, b, float(theta[-1])


def forward(theta: np.ndarray, shape: Shape, x: np.ndarray) -> tuple[np.ndarray, Any]:
    """``y(x)`` for ``x: (N, K)`` and what :func:`backward` needs."""
    a, b, t = shape.unpack(theta)
    beta = math.exp(t)
    w = np.exp(a)
    z = np.einsum("nk,gjk->ngj", x, w) + b
    m = -logsumexp(-beta * z, axis=2) / beta
    y = logsumexp(beta * m, axis=1) / beta
    return y, (x, w, z, m, y, beta)


def backward(gy: np.ndarray, shape: Shape, cache: Any) -> np.ndarray:
    """∂L/∂θ from ``gy = ∂L/∂y: (N,)`` (formulas in the module docstring)."""
    x, w, z, m, y, beta = cache
    q = softmax(-beta * z, axis=2)
    p = softmax(beta * m, axis=1)
    dz = gy[:, None, None] * p[:, :, None] * q
    da = np.einsum("ngj,nk->gjk", dz, x) * w
    db = dz.sum(axis=0)
    dt = float(gy @ ((p[:, :, None] * q * z).sum(axis=(1, 2)) - y))
    return np.concatenate([da.ravel(), db.ravel(), [dt]])


def _penalty(theta: np.ndarray, shape: Shape, l2: float) -> tuple[float, np.ndarray]:
    a, _, _ = shape.unpack(theta)
    w2 = np.exp(2 * a)
    grad = np.zeros_like(theta)
    grad[: a.size] = l2 * 2 * w2.ravel() / a.size
    return float(l2 * w2.mean()), grad


def mse_loss(
    theta: np.ndarray, shape: Shape, x: np.ndarray, target: np.ndarray, l2: float = 0.0
) -> tuple[float, np.ndarray]:
    """``(1/N) Σ (y − t)² + λ · mean(exp(2a))`` and its gradient in θ."""
    y, cache = forward(theta, shape, x)
    r = y - target
    pen, gpen = _penalty(theta, shape, l2)
    return float(r @ r / r.size) + pen, backward(2 * r / r.size, shape, cache) + gpen


def bt_loss(
    theta: np.ndarray,
    shape: Shape,
    better: np.ndarray,
    worse: np.ndarray,
    l2: float = 0.0,
    temperature: float = 0.1,
) -> tuple[float, np.ndarray]:
    """Bradley–Terry: ``(1/P) Σ −log σ((y(x⁺) − y(x⁻)) / τ) + λ · mean(exp(2a))``, gradient."""
    yb, cb = forward(theta, shape, better)
    yw, cw = forward(theta, shape, worse)
    d = (yb - yw) / temperature
    n = d.size
    g = -expit(-d) / (temperature * n)  # ∂/∂y⁺ of −log σ(d)/n; ∂/∂y⁻ is its negative
    pen, gpen = _penalty(theta, shape, l2)
    grad = backward(g, shape, cb) + backward(-g, shape, cw) + gpen
    return float(-log_expit(d).mean()) + pen, grad


def _start(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """A random start whose units are near the mean of the inputs (y ≈ 0.5 on mid inputs)."""
    a = np.log(rng.uniform(0.5, 1.5, (shape.groups, shape.units, shape.inputs)) / shape.inputs)
    b = rng.normal(0.0, 0.1, (shape.groups, shape.units))
    return np.concatenate([a.ravel(), b.ravel(), [math.log(8.0)]])


def _bounds(shape: Shape) -> list[tuple[float | None, float | None]]:
    n_a = shape.groups * shape.units * shape.inputs
    n_b = shape.groups * shape.units
    return [(-MAX_LOG, MAX_LOG)] * n_a + [(None, None)] * n_b + [(-5.0, 8.0)]


def _minimise(fun: Any, shape: Shape, cfg: FitConfig) -> tuple[np.ndarray, float, int]:
    rng = np.random.default_rng(cfg.seed)
    best: tuple[np.ndarray, float, int] | None = None
    for _ in range(cfg.restarts):
        res = minimize(
            fun,
            _start(shape, rng),
            jac=True,
            method="L-BFGS-B",
            bounds=_bounds(shape),
            options={"maxiter": cfg.max_iter},
        )
        if best is None or float(res.fun) < best[1]:
            best = (np.asarray(res.x), float(res.fun), int(res.nit))
    assert best is not None
    return best


def harmonic_mean(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Unit-weight harmonic mean of scaled components ``x: (N, K)`` (the ``harmonic``
    aggregator with default params), the baseline the fit is compared with."""
    return x.shape[1] / (1.0 / np.maximum(x, eps)).sum(axis=1)


@dataclass(frozen=True)
class FitResult:
    """The fitted model file and its figures (losses: MSE, or BT negative log-likelihood)."""

    model: ModelFile
    loss: str
    n_train: int
    n_holdout: int
    train_loss: float
    holdout_loss: float | None
    harmonic_train_loss: float
    harmonic_holdout_loss: float | None
    iterations: int

    def summary(self) -> dict[str, Any]:
        fit = self.model.provenance.get("fit", {})
        pairs = {k: v for k, v in fit.items() if "pair_accuracy" in k}
        return {
            **pairs,
            "loss": self.loss,
            "inputs": list(self.model.inputs),
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "train_loss": self.train_loss,
            "holdout_loss": self.holdout_loss,
            "harmonic_train_loss": self.harmonic_train_loss,
            "harmonic_holdout_loss": self.harmonic_holdout_loss,
            "iterations": self.iterations,
        }


def _l2(cfg: FitConfig, default: float) -> float:
    return default if cfg.l2 is None else cfg.l2


def _split(n: int, cfg: FitConfig) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(cfg.seed + 1).permutation(n)
    n_hold = round(n * cfg.holdout)
    if n - n_hold < MIN_SAMPLES:
        n_hold = max(0, n - MIN_SAMPLES)
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


def _check_x(x: np.ndarray, inputs: list[str]) -> None:
    if x.ndim != 2 or x.shape[1] != len(inputs):
        raise ValueError(f"expected rows of {len(inputs)} component values ({inputs})")
    if not np.all(np.isfinite(x)) or x.min(initial=0.0) < 0.0 or x.max(initial=0.0) > 1.0:
        raise ValueError("component values must be scaled to [0, 1] by their ranges")


def _model(
    theta: np.ndarray,
    shape: Shape,
    inputs: list[str],
    provenance: dict[str, Any],
    offset: float = 0.0,
    gain: float = 1.0,
) -> ModelFile:
    a, b, t = shape.unpack(theta)
    return ModelFile(
        format=FORMAT,
        inputs=list(inputs),
        log_weights=a.tolist(),
        biases=b.tolist(),
        log_beta=t,
        offset=offset,
        gain=gain,
        provenance=provenance,
    )


def _provenance(
    cfg: FitConfig, loss: str, figures: dict[str, Any], extra: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fit": {"loss": loss, **figures},
        "config": cfg.model_dump(),
        **(extra or {}),
    }


def fit_regression(
    x: np.ndarray,
    target: np.ndarray,
    inputs: list[str],
    cfg: FitConfig | None = None,
    provenance: dict[str, Any] | None = None,
) -> FitResult:
    """Fit ``y(x) ≈ target`` (MSE) on scaled component rows ``x: (N, K)``, ``target: (N,)``.

    Raises ``ValueError`` for fewer than :data:`MIN_SAMPLES` rows or values outside [0, 1].
    """
    cfg = cfg or FitConfig()
    x = np.asarray(x, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    _check_x(x, inputs)
    if target.shape != (x.shape[0],) or not np.all(np.isfinite(target)):
        raise ValueError("expected one finite target value per row")
    if x.shape[0] < MIN_SAMPLES:
        raise ValueError(f"too few samples to fit: {x.shape[0]} (at least {MIN_SAMPLES})")
    tr, ho = _split(x.shape[0], cfg)
    shape = Shape(cfg.groups, cfg.units, len(inputs))
    theta, _, nit = _minimise(
        lambda th: mse_loss(th, shape, x[tr], target[tr], _l2(cfg, 1e-4)), shape, cfg
    )

    def mse(pred: np.ndarray, idx: np.ndarray) -> float | None:
        return float(np.mean((pred[idx] - target[idx]) ** 2)) if idx.size else None

    draft = _model(theta, shape, inputs, {})
    pred = SmoothMinMax.of(draft)(x)  # clipped to [0, 1], as served
    harm = harmonic_mean(x)
    figures = {
        "train_mse": mse(pred, tr),
        "holdout_mse": mse(pred, ho),
        "harmonic_train_mse": mse(harm, tr),
        "harmonic_holdout_mse": mse(harm, ho),
        "n_train": int(tr.size),
        "n_holdout": int(ho.size),
        "l2": _l2(cfg, 1e-4),
    }
    model = _model(theta, shape, inputs, _provenance(cfg, "mse", figures, provenance))
    return FitResult(
        model,
        "mse",
        int(tr.size),
        int(ho.size),
        float(figures["train_mse"]),
        figures["holdout_mse"],
        float(figures["harmonic_train_mse"]),
        figures["harmonic_holdout_mse"],
        nit,
    )


def fit_preferences(
    better: np.ndarray,
    worse: np.ndarray,
    inputs: list[str],
    cfg: FitConfig | None = None,
    provenance: dict[str, Any] | None = None,
) -> FitResult:
    """Fit a Bradley–Terry utility on pairs: row p of ``better`` is preferred to row p of
    ``worse`` (both ``(P, K)``, scaled). Losses reported: mean negative log-likelihood at τ
    for the network (before calibration) and for the harmonic mean."""
    cfg = cfg or FitConfig()
    better = np.asarray(better, dtype=np.float64)
    worse = np.asarray(worse, dtype=np.float64)
    _check_x(better, inputs)
    _check_x(worse, inputs)
    if better.shape != worse.shape:
        raise ValueError("better and worse must have one row per pair")
    if better.shape[0] < MIN_SAMPLES:
        raise ValueError(f"too few pairs to fit: {better.shape[0]} (at least {MIN_SAMPLES})")
    tr, ho = _split(better.shape[0], cfg)
    shape = Shape(cfg.groups, cfg.units, len(inputs))
    tau = cfg.temperature
    theta, _, nit = _minimise(
        lambda th: bt_loss(th, shape, better[tr], worse[tr], _l2(cfg, 1e-2), tau), shape, cfg
    )
    yb, _ = forward(theta, shape, better)
    yw, _ = forward(theta, shape, worse)
    hb, hw = harmonic_mean(better), harmonic_mean(worse)

    def nll(d: np.ndarray, idx: np.ndarray) -> float | None:
        return float(-log_expit(d[idx] / tau).mean()) if idx.size else None

    def acc(d: np.ndarray, idx: np.ndarray) -> float | None:
        return float((d[idx] > 0).mean()) if idx.size else None

    lo, hi = float(min(yb[tr].min(), yw[tr].min())), float(max(yb[tr].max(), yw[tr].max()))
    gain = 1.0 / (hi - lo) if hi > lo else 1.0
    figures = {
        "train_nll": nll(yb - yw, tr),
        "holdout_nll": nll(yb - yw, ho),
        "harmonic_train_nll": nll(hb - hw, tr),
        "harmonic_holdout_nll": nll(hb - hw, ho),
        "train_pair_accuracy": acc(yb - yw, tr),
        "holdout_pair_accuracy": acc(yb - yw, ho),
        "harmonic_train_pair_accuracy": acc(hb - hw, tr),
        "harmonic_holdout_pair_accuracy": acc(hb - hw, ho),
        "n_train": int(tr.size),
        "n_holdout": int(ho.size),
        "l2": _l2(cfg, 1e-2),
        "temperature": tau,
    }
    model = _model(
        theta, shape, inputs, _provenance(cfg, "bradley_terry", figures, provenance), lo, gain
    )
    return FitResult(
        model,
        "bradley_terry",
        int(tr.size),
        int(ho.size),
        float(figures["train_nll"]),
        figures["holdout_nll"],
        float(figures["harmonic_train_nll"]),
        figures["harmonic_holdout_nll"],
        nit,
    )
