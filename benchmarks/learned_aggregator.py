"""The learned aggregator: how well a fit recovers known aggregators, and what it costs.

For each known aggregate (harmonic mean of 2 and 3 components, DEVA's harmonic with a ¼-weight
alignment term, min, weighted mean) ``--rows`` synthetic rows of uniform scaled components
are fitted (:func:`services.reward.fit.fit_regression`, default network G = 2, J = 8) and
scored on fresh rows: RMSE and max error of the fit and of the plain harmonic mean, fit
seconds. Then aggregation cost: ``aggregate_values`` over one batch of 4096 × 4 values with
``harmonic`` and with ``learned`` side by side (best of ``--repeat``), and their ratio.

    python benchmarks/learned_aggregator.py            # prints JSON
    python benchmarks/learned_aggregator.py --rows 500
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.reward.fit import FitConfig, fit_regression, harmonic_mean  # noqa: E402
from services.reward.scoring.learned import SmoothMinMax  # noqa: E402


def _targets() -> dict[str, tuple[int, object]]:
    def deva(x: np.ndarray) -> np.ndarray:
        w = np.array([1.0, 1.0, 1.0, 0.25])
        return w.sum() / (w / np.maximum(x, 1e-6)).sum(axis=1)

    return {
        "harmonic_2": (2, harmonic_mean),
        "harmonic_3": (3, harmonic_mean),
        "deva_harmonic_4 (alignment w=1/4)": (4, deva),
        "min_3": (3, lambda x: x.min(axis=1)),
        "weighted_mean_3 (1,2,3)": (3, lambda x: x @ np.array([1, 2, 3]) / 6.0),
    }


def fit_quality(rows: int, cfg: FitConfig, seed: int) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, (k, fn) in _targets().items():
        x = rng.uniform(0, 1, (rows, k))
        t0 = time.perf_counter()
        res = fit_regression(x, fn(x), [f"c{i}" for i in range(k)], cfg)
        fit_s = time.perf_counter() - t0
        fresh = rng.uniform(0, 1, (5000, k))
        truth = fn(fresh)
        err = SmoothMinMax.of(res.model)(fresh) - truth
        herr = harmonic_mean(fresh) - truth
        out[name] = {
            "fit_rmse_fresh": float(np.sqrt(np.mean(err**2))),
            "fit_max_abs_err_fresh": float(np.abs(err).max()),
            "harmonic_rmse_fresh": float(np.sqrt(np.mean(herr**2))),
            "holdout_mse": res.holdout_loss,
            "fit_s": fit_s,
            "iterations": res.iterations,
        }
    return out


def aggregation_cost(repeat: int, seed: int) -> dict[str, float]:
    from schemas.reward import RewardSpec
    from services.reward.scoring import aggregate_values, compiled

    rng = np.random.default_rng(seed)
    names = ["format", "f1", "miou", "giou"]
    x = rng.uniform(0, 1, (400, 4))
    res = fit_regression(x, harmonic_mean(x), names, FitConfig(restarts=1))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agg.json"
        path.write_text(json.dumps(res.model.model_dump(mode="json")))
        comps = [{"name": n} for n in names]
        specs = {
            m: compiled(RewardSpec.model_validate({"components": comps, "aggregate": a}))
            for m, a in (
                ("harmonic", {"method": "harmonic"}),
                ("learned", {"method": "learned", "params": {"path": str(path)}}),
            )
        }
        values = rng.uniform(0, 1, (4096, 4))
        values[:, 3] = values[:, 3] * 2 - 1  # giou ∈ [-1, 1]
        present = np.ones(values.shape, bool)
        best = dict.fromkeys(specs, float("inf"))
        for _ in range(repeat):
            for m, c in specs.items():  # interleaved, so both see the same machine load
                t0 = time.perf_counter()
                aggregate_values(c, values, present)
                best[m] = min(best[m], time.perf_counter() - t0)
    return {
        "batch": 4096,
        "components": 4,
        "harmonic_ms": best["harmonic"] * 1e3,
        "learned_ms": best["learned"] * 1e3,
        "learned_over_harmonic": best["learned"] / best["harmonic"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1000, help="training rows per target")
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = FitConfig(restarts=args.restarts, seed=args.seed)
    report = {
        "benchmark": "learned_aggregator",
        "rows": args.rows,
        "network": {"groups": cfg.groups, "units": cfg.units, "restarts": cfg.restarts},
        "fit": fit_quality(args.rows, cfg, args.seed),
        "aggregation": aggregation_cost(args.repeat, args.seed),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
