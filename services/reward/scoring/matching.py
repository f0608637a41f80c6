"""One-to-one box matching: Hungarian (F1 / mIoU) and Visual-RFT's greedy matching.

Hungarian (DiG / DEVA-style detection rewards, DETR-style cost):

    cost[i, j] = λ_L1 · L1(p̃_i, g̃_j) + λ_giou · (1 − GIoU(p_i, g_j)) + λ_cls · [label_i ≠ label_j]

with p̃, g̃ the boxes divided by the image size, solved by
``scipy.optimize.linear_sum_assignment`` (rectangular: min(N, M) pairs). A matched pair is a
true positive when IoU ≥ τ and, where labels exist, the labels agree.

Threshold decisions are exact. The float IoU of a pair is within ~1e-12 of its exact value
(coordinates below 1e7, box sides above 1e-5 of the largest coordinate); where it lies within
:data:`NEAR` of τ the decision is taken again on the exact rational IoU of the decimals the
numbers were written as (``exact``: a callback giving it), so an IoU of exactly τ — which
after a frame conversion is computed as τ ± 1 ulp — is classified by the stated rule, and
equal IoUs tie exactly. Pairs further from τ are decided by the float, which cannot be on the
wrong side.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from itertools import compress

import numpy as np
from scipy.optimize import linear_sum_assignment

from services.reward.scoring.geometry import iou_giou_matrix, l1_matrix

NEAR = 1e-6
"""Float IoUs within this distance of a threshold (or of each other, for ties) are re-decided
in exact arithmetic."""

ExactIoU = Callable[[int, int], Fraction]
"""``exact(i, j)``: exact IoU of prediction i and GT j (row/column of the IoU matrix)."""


def at_least(
    values: list[float],
    rows: list[int],
    cols: list[int],
    tau: float,
    exact: ExactIoU | None,
    strict: bool = False,
) -> list[bool]:
    """``IoU ≥ τ`` (``strict``: ``IoU > τ``) for the pairs ``(rows[k], cols[k])`` whose float
    IoUs are ``values``; near-τ pairs are decided on ``exact`` (module docstring)."""
    out = [v > tau for v in values] if strict else [v >= tau for v in values]
    if exact is None:
        return out
    lo, hi = tau - NEAR, tau + NEAR
    for k, v in enumerate(values):
        if lo <= v <= hi:
            e, t = exact(rows[k], cols[k]), Fraction(repr(tau))
            out[k] = e > t if strict else e >= t
    return out


@dataclass(frozen=True, slots=True)
class Match:
    """Result of a matching: ``rows``/``cols`` index predictions/GT of the K matched pairs,
    ``iou`` their IoU and ``tp`` whether each pair is a true positive (K entries each)."""

    rows: list[int]
    cols: list[int]
    iou: list[float]
    tp: list[bool]
    n_pred: int
    n_gt: int

    @property
    def n_tp(self) -> int:
        return sum(self.tp)


def label_mismatch(pred: list[str | None] | None, gt: list[str] | None) -> np.ndarray | None:
    """``(N, M)`` bool: labels differ (both given; normalised). None when either side has none.

    A prediction without a label (None) in a labelled answer counts as a mismatch.
    """
    if pred is None or gt is None:
        return None
    p = np.array([normalise(clean_label(v)) if v is not None else "\0" for v in pred], dtype=object)
    g = np.array([normalise(clean_label(v)) for v in gt], dtype=object)
    return p[:, None] != g[None, :]


_QUOTES = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb"}
_TRAILING = ".!?,;:\u3002\uff01\uff1f"


def clean_label(text: str) -> str:
    """Strip surrounding whitespace, matching surrounding quotes (``"…"``, ``'…'``, ````…````,
    “…”, ‘…’, «…») and trailing punctuation (``. ! ? , ; :`` and their CJK forms), repeatedly:
    ``'"Sunflower."'`` → ``Sunflower``. Inner characters are kept (``bird's nest``)."""
    prev = None
    while text != prev:
        prev = text
        text = text.strip().rstrip(_TRAILING).rstrip()
        if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
            text = text[1:-1]
    return text


def normalise(text: str) -> str:
    """Lower-case and drop whitespace, ``_`` and ``-`` ("Boeing_737-800 " → "boeing737800")."""
    return "".join(ch for ch in text.lower() if not (ch.isspace() or ch in "_-"))


def hungarian(
    pred: np.ndarray,
    gt: np.ndarray,
    size: tuple[float, float],
    *,
    tau: float = 0.5,
    l1_weight: float = 5.0,
    giou_weight: float = 2.0,
    cls_weight: float = 1.0,
    mismatch: np.ndarray | None = None,
) -> Match:
    """Hungarian matching of ``pred: (N, 4)`` to ``gt: (M, 4)`` pixel boxes (module docstring).

    ``size = (W, H)`` normalises the L1 term; ``mismatch: (N, M) bool`` the label disagreement.
    """
    n, m = pred.shape[0], gt.shape[0]
    if n == 0 or m == 0:
        return hungarian_on(np.zeros((n, m)), np.zeros((n, m)), np.zeros((n, m)), tau=tau)
    iou, giou = iou_giou_matrix(pred, gt)
    l1 = l1_matrix(pred, gt, size)
    return hungarian_on(
        iou,
        giou,
        l1,
        tau=tau,
        l1_weight=l1_weight,
        giou_weight=giou_weight,
        cls_weight=cls_weight,
        mismatch=mismatch,
    )


def hungarian_on(
    iou: np.ndarray,
    giou: np.ndarray,
    l1: np.ndarray,
    *,
    tau: float = 0.5,
    l1_weight: float = 5.0,
    giou_weight: float = 2.0,
    cls_weight: float = 1.0,
    mismatch: np.ndarray | None = None,
    cost: np.ndarray | None = None,
    exact: ExactIoU | None = None,
) -> Match:
    """:func:`hungarian` on precomputed ``(N, M)`` IoU, GIoU and normalised-L1 matrices
    (``cost``: the L1 + GIoU part of the cost, when already computed; ``exact``: exact IoU of
    a pair, for decisions within :data:`NEAR` of τ). Equal-cost assignments are broken as
    ``linear_sum_assignment`` breaks them (deterministic for a given matrix)."""
    n, m = iou.shape
    if n == 0 or m == 0:
        return Match([], [], [], [], n, m)
    if cost is None:
        cost = giou_weight * (1.0 - giou)
        if l1_weight:
            cost += l1_weight * l1
    if mismatch is not None and cls_weight:
        cost = cost + cls_weight * mismatch
    r, c = linear_sum_assignment(cost)
    rows, cols = r.tolist(), c.tolist()
    pair_iou = iou[r, c].tolist()
    tp = at_least(pair_iou, rows, cols, tau, exact)
    if mismatch is not None:
        differ = mismatch[r, c].tolist()
        tp = [t and not d for t, d in zip(tp, differ, strict=True)]
    return Match(rows, cols, pair_iou, tp, n, m)


def f1_score(match: Match) -> float:
    """P = TP/N, R = TP/M, F1 = 2PR/(P+R) = 2·TP/(N+M); 0 when TP = 0.

    M = N = 0 → 1 (nothing to find, nothing claimed); exactly one of them 0 → 0.
    """
    if match.n_pred == 0 and match.n_gt == 0:
        return 1.0
    tp = match.n_tp
    return 2.0 * tp / (match.n_pred + match.n_gt) if tp else 0.0


def mean_iou(match: Match) -> float:
    """Σ IoU over true-positive pairs / max(M, N); M = N = 0 → 1; exactly one 0 → 0."""
    if match.n_pred == 0 and match.n_gt == 0:
        return 1.0
    if match.n_pred == 0 or match.n_gt == 0:
        return 0.0
    hit = math.fsum(compress(match.iou, match.tp))
    return hit / max(match.n_pred, match.n_gt)


def greedy_by_confidence(
    iou: np.ndarray, conf: list[float], exact: ExactIoU | None = None
) -> tuple[list[float], list[bool]]:
    """Visual-RFT's ``sort_and_calculate_iou`` on an ``(N, M)`` IoU matrix: per prediction (in
    input order) its IoU (0 when unmatched) and whether it matched.

    Predictions are visited by confidence, highest first (stable for ties, as Python's
    ``sorted(..., reverse=True)``); each takes the still-unmatched GT of highest IoU — the
    first one (lowest index) among equal IoUs — and is matched only when that IoU > 0.5
    (strict). An unmatched prediction uses up no GT. With ``exact``, IoUs within
    :data:`NEAR` of the best one or of 0.5 are compared exactly, so ties and the threshold
    behave as Visual-RFT's integer arithmetic in its own 0–1000 frame.
    """
    n, m = iou.shape
    ious = [0.0] * n
    matched = [False] * n
    if n == 0 or m == 0:
        return ious, matched
    free = np.ones(m, dtype=bool)
    for i in sorted(range(n), key=lambda k: -conf[k]):
        row = np.where(free, iou[i], -1.0)
        j = int(np.argmax(row))
        best = float(row[j])
        if exact is not None and best >= 0.5 - NEAR:
            close = np.flatnonzero(row >= best - NEAR).tolist()
            if len(close) > 1:
                values = [exact(i, k) for k in close]
                top = max(values)
                j = close[values.index(top)]
            hit = exact(i, j) > Fraction(1, 2) if abs(best - 0.5) <= NEAR else best > 0.5
        else:
            hit = best > 0.5
        if hit:
            free[j] = False
            ious[i] = float(row[j])
            matched[i] = True
    return ious, matched
