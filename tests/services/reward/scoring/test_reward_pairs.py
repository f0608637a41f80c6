"""The batched pair geometry equals the per-sample computation."""

import json
import random

import numpy as np
import pytest

from schemas.geometry import Frame
from schemas.reward import BoxSolution
from services.reward.scoring.base import Truth
from services.reward.scoring.pairs import cost_of, pair_matrices, precompute
from services.reward.scoring.pipeline import prepare

FRAMES = [
    Frame(),
    Frame(coords="pixel", image_size=(300, 200)),
    Frame(coords="norm1000", image_size=(300, 200)),
]


def _box(rng, hi):
    x, y = rng.uniform(0, hi * 0.8), rng.uniform(0, hi * 0.8)
    b = [x, y, x + rng.uniform(0, hi * 0.2), y + rng.uniform(0, hi * 0.2)]
    if rng.random() < 0.1:  # an inverted prediction now and then
        b[0], b[2] = b[2], b[0]
    return [round(v, 2) for v in b]


@pytest.mark.parametrize("seed", range(5))
def test_precompute_matches_per_sample_geometry(seed):
    rng = random.Random(seed)
    batch, fresh = [], []
    for k in range(40):
        frame = rng.choice(FRAMES)
        hi = 1000 if frame.coords == "norm1000" else 200
        gt = [sorted_box(_box(rng, 200)) for _ in range(rng.randint(0, 4))]
        truth = Truth.of(BoxSolution(boxes=gt), frame)
        pred = [_box(rng, hi) for _ in range(rng.randint(0, 4))]
        text = f"<think>t</think><answer>{json.dumps(pred)}</answer>"
        batch.append(prepare(str(k), text, truth))
        fresh.append(prepare(str(k), text, Truth.of(BoxSolution(boxes=gt), frame)))
    precompute(batch, [(5.0, 2.0)])
    for b, f in zip(batch, fresh, strict=True):
        np.testing.assert_array_equal(b.pred, f.pred)
        assert b.answer.n_inverted == f.answer.inverted  # bulk count == lazy count
        got, want = pair_matrices(b), pair_matrices(f)
        for x, y in zip(got, want, strict=True):
            assert x.shape == y.shape
            np.testing.assert_array_equal(x, y)  # bit-identical, not just close
        if got[0].size:
            np.testing.assert_array_equal(cost_of(b, 5.0, 2.0), 2.0 * (1 - want[1]) + 5.0 * want[2])


def sorted_box(b):
    return [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])]
