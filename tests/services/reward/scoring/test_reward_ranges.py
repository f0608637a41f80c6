"""aggregate_range: corners of the component box through the spec's own aggregator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.reward import RewardSpec
from services.reward.scoring import aggregators, compiled
from services.reward.scoring.pipeline import aggregate_values
from services.reward.scoring.ranges import aggregate_range


def test_dig_sum_hand_computed() -> None:
    rng = aggregate_range(compiled("dig"))  # format + f1 + miou, each in [0, 1]
    assert (rng.lo, rng.hi, rng.format_alone) == (0.0, 3.0, 1.0)


def test_harmonic_with_alignment_hand_computed() -> None:
    spec = RewardSpec.model_validate(
        {
            "components": [{"name": "format"}, {"name": "f1"}, {"name": "alignment"}],
            "aggregate": {"method": "harmonic"},
        }
    )
    rng = aggregate_range(compiled(spec))
    # min: format = f1 = 0 → ε = 1e-6 each, alignment at its floor → r̂ = ½
    assert rng.lo == pytest.approx(3 / (2 / 1e-6 + 2))
    assert rng.hi == pytest.approx(1.0)
    assert rng.format_alone == pytest.approx(3 / (1 + 1 / 1e-6 + 2))


def test_giou_offset_and_no_format() -> None:
    spec = RewardSpec.model_validate(
        {
            "components": [{"name": "giou", "params": {"offset": 1.0}}],
            "aggregate": {"method": "sum"},
        }
    )
    rng = aggregate_range(compiled(spec))
    assert (rng.lo, rng.hi, rng.format_alone) == (0.0, 2.0, None)


@settings(max_examples=40, deadline=None)
@given(
    # ``learned`` needs a model file and unit weights: its range test is in test_reward_learned
    method=st.sampled_from(sorted(set(aggregators.names()) - {"learned"})),
    weights=st.lists(st.floats(0.1, 3.0), min_size=3, max_size=3),
    u=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
)
def test_every_aggregate_lies_in_the_range(
    method: str, weights: list[float], u: list[float]
) -> None:
    names = ["format", "giou", "alignment"]
    spec = RewardSpec.model_validate(
        {
            "components": [{"name": n, "weight": w} for n, w in zip(names, weights, strict=True)],
            "aggregate": {"method": method},
        }
    )
    c = compiled(spec)
    rng = aggregate_range(c)
    box = np.array([comp.value_range(p) for comp, p in c.components])
    values = (box[:, 0] + np.array(u) * (box[:, 1] - box[:, 0]))[None, :]
    got, _ = aggregate_values(c, values, np.ones_like(values, dtype=bool))
    assert rng.lo - 1e-9 <= got[0] <= rng.hi + 1e-9
