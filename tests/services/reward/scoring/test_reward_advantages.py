import numpy as np
import pytest

from services.reward.scoring import advantages
from services.reward.scoring.advantages import EpsParams, sample_std


def run(name, groups, **params):
    est = advantages.get(name)
    return [a.tolist() for a in est.fn([np.array(g, float) for g in groups], est.params(**params))]


def test_grpo_by_hand():
    (a,) = run("grpo", [[1, 2, 3]])  # mean 2, sample std 1
    assert a == pytest.approx([-1 / 1.0001, 0, 1 / 1.0001])
    (a,) = run("grpo", [[1, 2, 3]], eps=0.5)
    assert a == pytest.approx([-1 / 1.5, 0, 1 / 1.5])


def test_zero_variance_and_single_completion_give_zero():
    assert run("grpo", [[2, 2, 2], [7]]) == [[0, 0, 0], [0]]
    assert run("rloo", [[5]]) == [[0]]


def test_dr_grpo_and_rloo_by_hand():
    assert run("dr_grpo", [[1, 2, 3]]) == [[-1, 0, 1]]
    (a,) = run("rloo", [[1, 2, 3]])
    # r_i − mean of the others: 1 − 2.5, 2 − 2, 3 − 1.5
    assert a == pytest.approx([-1.5, 0, 1.5])


def test_batch_uses_batch_std():
    groups = [[1, 2, 3], [5, 5]]
    std = float(np.std([1, 2, 3, 5, 5], ddof=1))
    a, b = run("batch", groups)
    assert a == pytest.approx([-1 / (std + 1e-4), 0, 1 / (std + 1e-4)])
    assert b == [0, 0]


def test_sample_std_and_eps_default():
    assert sample_std(np.array([1.0, 3.0])) == pytest.approx(np.sqrt(2))
    assert sample_std(np.array([4.0])) == 0.0
    assert EpsParams().eps == 1e-4


def test_sample_std_matches_numpy():
    rng = np.random.default_rng(0)
    for g in (2, 3, 8, 16):
        r = rng.normal(size=g) * 10
        assert sample_std(r) == pytest.approx(float(np.std(r, ddof=1)), rel=1e-12)
