"""Hypervolume V and reward r_v against hand-computed Gram determinants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from schemas.embedding import HypervolumeParams
from services.embedding import hypervolume as hv

S = 1 / math.sqrt(2)


def test_orthonormal_vectors_have_unit_volume() -> None:
    e = np.eye(5)
    assert hv.volume(e[0], e[1], e[2]) == pytest.approx(1.0)
    # r_v = max((1/1 - 0)^2, 2) = 2: the c clamp is active for the least aligned triple
    assert hv.reward(hv.volume(e[0], e[1], e[2])) == pytest.approx(2.0)


def test_identical_vectors_have_zero_volume_and_clamp() -> None:
    f = np.array([0.3, -1.2, 2.0])
    assert hv.volume(f, f, f) == pytest.approx(0.0, abs=1e-7)
    p = HypervolumeParams(v_min=0.25)
    # V clamped to 0.25 -> (1 / 0.25)^2 = 16, finite
    assert hv.reward(hv.volume(f, f, f), p) == pytest.approx(16.0)


def test_hand_computed_triple() -> None:
    # F rows: (1,0,0), (1,1,0)/√2, (1,0,1)/√2.  G = [[1, s, s], [s, 1, 1/2], [s, 1/2, 1]]
    # det G = 1 + 2·s·s·½ − s² − s² − ¼ = 1 + ½ − 1 − ¼ = ¼  →  V = ½ (= |det F|)
    f_i, f_q, f_o = np.array([1.0, 0, 0]), np.array([S, S, 0]), np.array([S, 0, S])
    g = hv.gram(f_i, f_q, f_o)
    assert np.linalg.det(g) == pytest.approx(0.25)
    assert hv.volume(f_i, f_q, f_o) == pytest.approx(0.5)
    assert hv.reward(0.5) == pytest.approx(4.0)  # (1/0.5)^2 = 4 > c = 2
    c_iq, c_io, c_qo = hv.pairwise_cosines(f_i, f_q, f_o)
    assert (c_iq, c_io, c_qo) == pytest.approx((S, S, 0.5))


def test_angle_in_a_plane_gives_sine() -> None:
    # f_i, f_q at angle θ in the x-y plane, f_o = z: det G = 1 − cos²θ → V = |sin θ|
    for theta in (0.1, 0.7, 1.3, 2.9):
        f_i = np.array([1.0, 0, 0])
        f_q = np.array([math.cos(theta), math.sin(theta), 0])
        f_o = np.array([0, 0, 1.0])
        assert hv.volume(f_i, f_q, f_o) == pytest.approx(abs(math.sin(theta)))


def test_two_dimensional_embeddings_are_always_degenerate() -> None:
    # three vectors in R^2 are linearly dependent: det G = 0
    f_i, f_q, f_o = np.array([1.0, 0]), np.array([0.6, 0.8]), np.array([-1.0, 2.0])
    assert hv.volume(f_i, f_q, f_o) == pytest.approx(0.0, abs=1e-7)


def test_inputs_are_normalised_first() -> None:
    f_i, f_q, f_o = (
        np.array([3.0, 0, 0]),
        np.array([5 * S, 5 * S, 0]),
        np.array([0.1 * S, 0, 0.1 * S]),
    )
    assert hv.volume(f_i, f_q, f_o) == pytest.approx(0.5)


def test_batched_matches_single() -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(3, 7, 16))
    batched = hv.volume(f[0], f[1], f[2])
    single = [hv.volume(f[0, k], f[1, k], f[2, k]) for k in range(7)]
    assert batched == pytest.approx(single)


unit_triples = arrays(
    np.float64, (3, 6), elements=st.floats(-1, 1, allow_nan=False, allow_infinity=False)
).filter(lambda a: (np.linalg.norm(a, axis=1) > 1e-3).all())


@settings(max_examples=60, deadline=None)
@given(unit_triples, st.permutations([0, 1, 2]))
def test_volume_is_order_invariant_and_bounded(f: np.ndarray, perm: list[int]) -> None:
    v = hv.volume(f[0], f[1], f[2])
    w = hv.volume(f[perm[0]], f[perm[1]], f[perm[2]])
    assert w == pytest.approx(v, abs=1e-7)  # sqrt amplifies det round-off (~1e-16 → 1e-8)
    assert 0.0 <= v <= 1.0
    # Gram determinant = squared volume = det(F Fᵀ): cross-check via the triple's QR factor
    r = np.linalg.qr(hv.normalise(f).T, mode="r")
    assert v == pytest.approx(abs(np.prod(np.diag(r))), abs=1e-6)


def test_reward_parameters() -> None:
    v = np.array([0.2, 0.5, 1.0])
    # a scales, b shifts, c floors: r = max((a/V − b)², c)
    p = HypervolumeParams(a=2.0, b=1.0, c=0.5, v_min=0.1)
    assert hv.reward(v, p) == pytest.approx([(10 - 1) ** 2, (4 - 1) ** 2, (2 - 1) ** 2])
    p = HypervolumeParams(a=1.0, b=3.0, c=0.0, v_min=0.1)
    assert hv.reward(v, p) == pytest.approx([4.0, 1.0, 4.0])  # (5−3)², (2−3)², (1−3)²
    p = HypervolumeParams(c=10.0)
    assert hv.reward(v, p) == pytest.approx([25.0, 10.0, 10.0])
    assert hv.reward(0.0, HypervolumeParams(v_min=0.05)) == pytest.approx(400.0)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (HypervolumeParams(), (2.0, 25.0)),  # V ∈ [0.2, 1]: 1/V² ∈ [1, 25], floored at 2
        (HypervolumeParams(v_min=0.1), (2.0, 100.0)),
        (HypervolumeParams(v_min=0.5, c=0.0), (1.0, 4.0)),
        (HypervolumeParams(a=1.0, b=3.0, c=0.0, v_min=0.1), (0.0, 49.0)),  # b inside [1, 10]
        (HypervolumeParams(a=1.0, b=20.0, c=0.0, v_min=0.1), (100.0, 361.0)),  # b above
        (HypervolumeParams(c=500.0), (500.0, 500.0)),
    ],
)
def test_reward_range_follows_from_v_min(
    params: HypervolumeParams, expected: tuple[float, float]
) -> None:
    assert hv.reward_range(params) == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.05, 5), st.floats(-5, 25), st.floats(0, 50), st.floats(0.01, 1), st.floats(0, 1))
def test_reward_stays_in_declared_range(
    a: float, b: float, c: float, v_min: float, v: float
) -> None:
    p = HypervolumeParams(a=a, b=b, c=c, v_min=v_min)
    lo, hi = hv.reward_range(p)
    r = float(hv.reward(v, p))
    assert lo - 1e-9 * max(1, hi) <= r <= hi * (1 + 1e-9) + 1e-9
    assert 0.0 <= float(hv.scaled(r, p)) <= 1.0


def test_scaled_endpoints() -> None:
    p = HypervolumeParams(v_min=0.1)  # range [2, 100]
    assert hv.scaled(2.0, p) == pytest.approx(0.0)
    assert hv.scaled(100.0, p) == pytest.approx(1.0)
    assert hv.scaled(51.0, p) == pytest.approx(0.5)
    assert hv.scaled(7.0, HypervolumeParams(c=500.0)) == pytest.approx(1.0)  # degenerate range
