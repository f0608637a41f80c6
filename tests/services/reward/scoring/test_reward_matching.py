import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schemas.reward import BoxSolution, Sample
from services.reward.scoring import score_samples
from services.reward.scoring.geometry import iou_giou_matrix, l1_matrix
from services.reward.scoring.matching import f1_score, hungarian, mean_iou

SIZE = (100.0, 100.0)


@st.composite
def box_sets(draw, max_size=6):
    n = draw(st.integers(0, max_size))
    out = []
    for _ in range(n):
        x = draw(st.integers(0, 90))
        y = draw(st.integers(0, 90))
        out.append([x, y, x + draw(st.integers(1, 30)), y + draw(st.integers(1, 30))])
    return out


def cost_matrix(p, g):
    _, gi = iou_giou_matrix(p, g)
    return 5.0 * l1_matrix(p, g, SIZE) + 2.0 * (1.0 - gi)


@settings(max_examples=150, deadline=None)
@given(box_sets(), box_sets())
def test_hungarian_is_optimal_against_brute_force(pred, gt):
    p, g = np.array(pred, float).reshape(-1, 4), np.array(gt, float).reshape(-1, 4)
    m = hungarian(p, g, SIZE)
    k = min(len(pred), len(gt))
    assert len(m.rows) == k
    if k == 0:
        return
    cost = cost_matrix(p, g)
    got = cost[m.rows, m.cols].sum()
    best = np.inf
    if len(pred) <= len(gt):
        for cols in itertools.permutations(range(len(gt)), len(pred)):
            best = min(best, sum(cost[i, j] for i, j in enumerate(cols)))
    else:
        for rows in itertools.permutations(range(len(pred)), len(gt)):
            best = min(best, sum(cost[i, j] for j, i in enumerate(rows)))
    assert got == pytest.approx(best, abs=1e-9)


def test_f1_and_miou_by_hand():
    gt = np.array([[0.0, 0, 10, 10], [50, 50, 60, 60]])
    # one exact hit, one far false positive: TP = 1, P = R = 1/2
    m = hungarian(np.array([[0.0, 0, 10, 10], [80, 80, 90, 90]]), gt, SIZE)
    assert f1_score(m) == pytest.approx(0.5)
    assert mean_iou(m) == pytest.approx(1 / 2)
    # IoU exactly 0.5 is a true positive (≥ τ): [50,50,60,55] vs [50,50,60,60]
    m = hungarian(np.array([[0.0, 0, 10, 10], [50, 50, 60, 55]]), gt, SIZE)
    assert m.n_tp == 2
    assert mean_iou(m) == pytest.approx((1 + 0.5) / 2)
    # 3 predictions, 2 GT, both hit: P = 2/3, R = 1, F1 = 0.8; miou = 2 / 3
    m = hungarian(np.array([[0.0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]]), gt, SIZE)
    assert f1_score(m) == pytest.approx(0.8)
    assert mean_iou(m) == pytest.approx(2 / 3)


def test_empty_set_conventions():
    e, one = np.zeros((0, 4)), np.array([[0.0, 0, 1, 1]])
    assert f1_score(hungarian(e, e, SIZE)) == 1.0 and mean_iou(hungarian(e, e, SIZE)) == 1.0
    assert f1_score(hungarian(one, e, SIZE)) == 0.0 and mean_iou(hungarian(one, e, SIZE)) == 0.0
    assert f1_score(hungarian(e, one, SIZE)) == 0.0 and mean_iou(hungarian(e, one, SIZE)) == 0.0


def _sample(pred, gt, labels=None):
    items = [{"bbox_2d": b} for b in pred]
    import json

    return Sample(
        id="s",
        completion=f"<think>t</think><answer>{json.dumps(items)}</answer>",
        solution=BoxSolution(boxes=gt, labels=labels),
    )


@settings(max_examples=60, deadline=None)
@given(box_sets(5), box_sets(5), st.randoms(use_true_random=False))
def test_f1_miou_invariant_to_permutations(pred, gt, rnd):
    assume(len({tuple(b) for b in pred}) == len(pred) and len({tuple(b) for b in gt}) == len(gt))
    spec = {"components": [{"name": "f1"}, {"name": "miou"}], "aggregate": {"method": "sum"}}
    from schemas.reward import RewardSpec

    spec = RewardSpec.model_validate(spec)
    base = score_samples([_sample(pred, gt)], spec)[0].components
    p2, g2 = pred[:], gt[:]
    rnd.shuffle(p2)
    rnd.shuffle(g2)
    other = score_samples([_sample(p2, g2)], spec)[0].components
    assert other["f1"] == pytest.approx(base["f1"])
    assert other["miou"] == pytest.approx(base["miou"])


def test_f1_and_miou_share_one_matching(monkeypatch):
    import services.reward.scoring.matching as matching

    calls = []
    real = matching.linear_sum_assignment

    def counting(cost):
        calls.append(cost.shape)
        return real(cost)

    monkeypatch.setattr(matching, "linear_sum_assignment", counting)
    r = score_samples([_sample([[0, 0, 10, 10]], [[0, 0, 10, 10]])], "dig")[0]
    assert r.components["f1"] == 1.0 and r.components["miou"] == 1.0
    assert calls == [(1, 1)]
