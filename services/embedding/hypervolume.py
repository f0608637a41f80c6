"""DEVA's alignment hypervolume and its reward (DEVA, CVPR 2026; docs/rewards.md,
``alignment``).

Given L2-normalised embeddings ``f_i`` (masked image ``i' = i ∘ m``), ``f_q`` (query) and
``f_o`` (output), stacked as the rows of ``F ∈ R^{3×D}``:

    G = F Fᵀ  (3×3 Gram matrix; G_kk = 1, G_kl = cos(f_k, f_l))
    V = sqrt(max(det G, 0))               0 ≤ V ≤ 1 (Hadamard), 0 ⇔ linearly dependent
    r_v = max((a / max(V, v_min) − b)², c)

``V`` is the volume of the parallelepiped spanned by the three unit vectors: smaller means
the three embeddings are more aligned, and the reward grows as ``V`` shrinks. ``det G`` of
unit vectors has the closed form ``1 + 2·c_iq·c_io·c_qo − c_iq² − c_io² − c_qo²``; round-off
can make it slightly negative, hence the ``max(·, 0)``. ``v_min > 0`` keeps r_v finite.

Range. With ``V ∈ [v_min, 1]`` and ``a > 0``, ``x = a / V`` ranges over ``[a, a / v_min]``;
``(x − b)²`` over that interval has its maximum at the endpoint farthest from ``b`` and its
minimum at the nearest point to ``b`` (0 when ``b`` lies inside). ``r_v``'s range is those two
numbers, each raised to at least ``c`` — see :func:`reward_range`. With the defaults
(a = 1, b = 0, c = 2, v_min = 0.2): ``[2, 25]``.

Why ``v_min = 0.2`` by default: CLIP-family image–text cosines rarely exceed ~0.4, so real
(image, query, output) triples have V well above 0.2 (e.g. cos_iq = cos_io = 0.3,
cos_qo = 0.95 gives V ≈ 0.28); the clamp then only guards degenerate inputs (an output that
copies the query, a blank masked image) while keeping the declared range — and hence the
[0, 1] scaling used by aggregation — narrow enough to carry signal.
"""

from __future__ import annotations

import numpy as np

from schemas.embedding import HypervolumeParams


def normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` (…, D) scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def gram(f_i: np.ndarray, f_q: np.ndarray, f_o: np.ndarray) -> np.ndarray:
    """Gram matrices ``G = F Fᵀ`` (N, 3, 3) of the normalised triples; inputs (N, D) or (D,)."""
    f = np.stack([normalise(f_i), normalise(f_q), normalise(f_o)], axis=-2)  # (N, 3, D)
    return f @ np.swapaxes(f, -1, -2)


def volume(f_i: np.ndarray, f_q: np.ndarray, f_o: np.ndarray) -> np.ndarray:
    """``V = sqrt(max(det G, 0))`` per triple, clipped to [0, 1] against round-off; (N,) or ()."""
    det = np.linalg.det(gram(f_i, f_q, f_o))
    return np.clip(np.sqrt(np.maximum(det, 0.0)), 0.0, 1.0)


def pairwise_cosines(
    f_i: np.ndarray, f_q: np.ndarray, f_o: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cos(i, q), cos(i, o), cos(q, o))``, the off-diagonal of G (for diagnosis)."""
    g = gram(f_i, f_q, f_o)
    return g[..., 0, 1], g[..., 0, 2], g[..., 1, 2]


def reward(v: np.ndarray | float, params: HypervolumeParams | None = None) -> np.ndarray:
    """``r_v = max((a / max(V, v_min) − b)², c)`` elementwise."""
    p = params or HypervolumeParams()
    v_c = np.maximum(np.asarray(v, dtype=np.float64), p.v_min)
    return np.maximum((p.a / v_c - p.b) ** 2, p.c)


def reward_range(params: HypervolumeParams | None = None) -> tuple[float, float]:
    """``[lo, hi]`` of r_v over ``V ∈ [v_min, 1]`` (see the module docstring)."""
    p = params or HypervolumeParams()
    x_lo, x_hi = p.a, p.a / p.v_min
    sq_max = max((x_lo - p.b) ** 2, (x_hi - p.b) ** 2)
    nearest = min(max(p.b, x_lo), x_hi)
    sq_min = (nearest - p.b) ** 2
    return max(sq_min, p.c), max(sq_max, p.c)


def scaled(r: np.ndarray | float, params: HypervolumeParams | None = None) -> np.ndarray:
    """r_v mapped linearly onto [0, 1] by its declared range: ``(r − lo) / (hi − lo)``.

    This is the reward component's ``floor="attainable"`` scaling; the default
    ``floor="credit"`` maps the floor to 0.5 instead (services/reward/scoring/alignment.py,
    docs/rewards.md "DEVA aggregation"). A degenerate range
    (``lo == hi``, e.g. ``c`` above every attainable value) maps to 1.
    """
    lo, hi = reward_range(params)
    r = np.asarray(r, dtype=np.float64)
    if hi <= lo:
        return np.ones_like(r)
    return np.clip((r - lo) / (hi - lo), 0.0, 1.0)
