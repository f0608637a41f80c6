import math

import numpy as np
import pytest

from schemas.reward import RewardSpec
from services.reward.scoring import aggregate_values, compiled


def agg(method, values, weights=None, names=("format", "f1", "miou"), **params):
    weights = weights or [1.0] * len(names)
    spec = RewardSpec.model_validate(
        {
            "components": [{"name": n, "weight": w} for n, w in zip(names, weights, strict=True)],
            "aggregate": {"method": method, "params": params},
        }
    )
    v = np.array([values], dtype=float)
    rewards, errors = aggregate_values(compiled(spec), v, ~np.isnan(v))
    return float(rewards[0]), errors[0]


VALUES = [1.0, 0.5, 0.25]


def test_hand_computed_aggregates():
    assert agg("harmonic", VALUES)[0] == pytest.approx(3 / (1 + 2 + 4))
    assert agg("harmonic", VALUES, scale=3.0)[0] == pytest.approx(9 / 7)
    assert agg("geometric", VALUES)[0] == pytest.approx(0.5)
    assert agg("sum", VALUES)[0] == pytest.approx(1.75)
    assert agg("sum", VALUES, [2, 1, 1])[0] == pytest.approx(2.75)
    assert agg("mean", VALUES)[0] == pytest.approx(1.75 / 3)
    assert agg("weighted", VALUES, [2, 1, 1])[0] == pytest.approx((2 + 0.5 + 0.25) / 4)
    assert agg("min", VALUES)[0] == pytest.approx(0.25)
    # weighted harmonic: Σw / Σ(w/r) = 4 / (2 + 2 + 4)
    assert agg("harmonic", VALUES, [2, 1, 1])[0] == pytest.approx(4 / 8)


def test_harmonic_zero_component_uses_eps_floor():
    got, _ = agg("harmonic", [1.0, 0.0], names=("format", "f1"), eps=1e-3)
    assert got == pytest.approx(2 / (1 + 1000))


def test_scaling_by_declared_range():
    # giou ∈ [−1, 1]: raw 0 → r̂ 0.5; format 1 → 1: harmonic 2 / (1/0.5 + 1)
    got, _ = agg("harmonic", [0.0, 1.0], names=("giou", "format"))
    assert got == pytest.approx(2 / 3)
    got, _ = agg("min", [-1.0, 1.0], names=("giou", "format"))
    assert got == 0.0
    got, _ = agg("sum", [-0.5, 1.0], names=("giou", "format"))  # sum is on raw values
    assert got == pytest.approx(0.5)


def test_missing_component_is_left_out_not_zero():
    got, err = agg("harmonic", [1.0, math.nan, 0.5])
    assert got == pytest.approx(2 / 3) and err is None
    got, err = agg("sum", [1.0, math.nan, 0.5])
    assert got == pytest.approx(1.5)
    got, err = agg("mean", [math.nan, math.nan, math.nan])
    assert got == 0.0 and err.code == "no_components"
