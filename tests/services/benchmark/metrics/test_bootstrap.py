"""Bootstrap intervals: agreement with a plain loop, determinism, coverage sanity."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.benchmark.metrics.bootstrap import (
    bootstrap_mean,
    bootstrap_ratio,
    bootstrap_statistic,
    resample_indices,
)


def test_vectorised_mean_equals_loop_over_the_same_resamples():
    rng = np.random.default_rng(3)
    x = rng.random(57)
    iv = bootstrap_mean(x, n_boot=300, seed=11)
    idx = resample_indices(57, 300, 11)
    stats = np.array([x[row].mean() for row in idx])
    assert iv.stderr == np.std(stats, ddof=1)
    lo, hi = np.quantile(stats, [0.025, 0.975])
    assert (iv.low, iv.high) == (lo, hi)
    loop = bootstrap_statistic(57, lambda row: float(x[row].mean()), n_boot=300, seed=11)
    assert np.isclose(loop.stderr, iv.stderr) and np.isclose(loop.low, iv.low)


def test_ratio_uses_paired_resampling():
    num = np.array([1.0, 2.0, 3.0, 4.0])
    den = 2 * num  # every resample has ratio exactly 1/2
    iv = bootstrap_ratio(num, den, n_boot=200, seed=0)
    assert iv.low == iv.high == 0.5 and iv.stderr == 0.0


def test_deterministic_in_seed_and_none_for_tiny_inputs():
    x = np.arange(10.0)
    assert bootstrap_mean(x, seed=1) == bootstrap_mean(x, seed=1)
    assert bootstrap_mean(x, seed=1) != bootstrap_mean(x, seed=2)
    assert bootstrap_mean(np.array([1.0])).stderr is None
    assert bootstrap_mean(x, n_boot=0).low is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=40))
def test_interval_lies_within_data_range(values):
    x = np.array(values)
    iv = bootstrap_mean(x, n_boot=100, seed=0)
    assert x.min() - 1e-12 <= iv.low <= iv.high <= x.max() + 1e-12


def test_stderr_close_to_analytic_for_bernoulli():
    x = (np.random.default_rng(0).random(400) < 0.3).astype(float)
    iv = bootstrap_mean(x, n_boot=2000, seed=0)
    analytic = x.std(ddof=0) / np.sqrt(x.size)
    assert abs(iv.stderr - analytic) / analytic < 0.1
