"""One-to-one box matching: Hungarian (F1 / mIoU) and Visual-RFT's greedy matching.

Hungarian (DiG / DEVA-style detection rewards, DETR-style cost):

    cost[i, j] = λ_L1 · L1(p̃_i, g̃_j) + λ_giou · (1 − GIoU(p_i, g_j)) + λ_cls · [label_i ≠ label_j]

with p̃, g̃ the boxes divided by the image size, solved by
``scipy.optimize.linear_sum_assignment`` (rectangular: min(N, M) pairs). A matched pair is a
true positive when IoU ≥ τ and, where labels exist, the labels agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import compress

import numpy as np
from scipy.optimize import linear_sum_assignment

from services.reward.scoring.geometry import iou_giou_matrix, l1_matrix


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
    p = np.array([normalise(v) if v is not None else "\0" for v in pred], dtype=object)
    g = np.array([normalise(v) for v in gt], dtype=object)
    return p[:, None] != g[None, :]


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
) -> Match:
    """:func:`hungarian` on precomputed ``(N, M)`` IoU, GIoU and normalised-L1 matrices
    (``cost``: the L1 + GIoU part of the cost, when already computed)."""
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
    pair_iou = iou[r, c].tolist()
    if mismatch is None:
        tp = [v >= tau for v in pair_iou]
    else:
        differ = mismatch[r, c].tolist()
        tp = [v >= tau and not d for v, d in zip(pair_iou, differ, strict=True)]
    return Match(r.tolist(), c.tolist(), pair_iou, tp, n, m)


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


def greedy_by_confidence(iou: np.ndarray, conf: list[float]) -> tuple[list[float], list[bool]]:
    """Visual-RFT's ``sort_and_calculate_iou`` on an ``(N, M)`` IoU matrix: per prediction (in
    input order) its IoU (0 when unmatched) and whether it matched.

    Predictions are visited by confidence, highest first (stable for ties); each takes the
    still-unmatched GT of highest IoU (first one on ties) and is matched only when that
    IoU > 0.5 (strict); an unmatched prediction uses up no GT.
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
        if row[j] > 0.5:
            free[j] = False
            ious[i] = float(row[j])
            matched[i] = True
    return ious, matched
