"""Pairwise box quantities of a sample (IoU, GIoU, normalised L1), computed for a whole batch
at once.

Numpy on a 10 × 10 matrix costs more in call overhead than in arithmetic, so the pipeline
calls :func:`precompute` once per request: every (prediction, GT) pair of every sample goes
into one flat vector, the geometry runs once on it, and each sample gets ``(N, M)`` views.
:func:`pair_matrices` falls back to a per-sample computation when nothing was precomputed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from services.reward.scoring.base import Prepared
from services.reward.scoring.geometry import (
    clip_size,
    frame_scale,
    iou_giou_matrix,
    iou_giou_of,
    l1_matrix,
    overlap,
)
from services.reward.scoring.parse import BoxAnswer

PAIRS = "pairs"
BUCKET = "bucket"
"""Cache key of ``(Bucket, j)``: the shape bucket a sample was precomputed in, its row."""


class Bucket:
    """Samples of one shape ``(N, M)`` precomputed together: ``blocks: (S, 3 + W, N, M)``
    (IoU, GIoU, L1, then one Hungarian cost per weight pair in ``keys``)."""

    __slots__ = ("blocks", "keys")

    def __init__(self, blocks: np.ndarray, keys: list[tuple[str, float, float]]) -> None:
        self.blocks = blocks
        self.keys = keys


def norm_size(s: Prepared) -> tuple[float, float]:
    """(W, H) that normalises L1: the image size, else the extent of all boxes (each ≥ 1)."""
    size = s.truth.frame.image_size
    if size is not None:
        return float(size[0]), float(size[1])
    both = np.concatenate([s.pred, s.truth.boxes])  # type: ignore[list-item]
    if both.shape[0] == 0:
        return 1.0, 1.0
    return max(1.0, float(np.abs(both[:, 0::2]).max())), max(
        1.0, float(np.abs(both[:, 1::2]).max())
    )


def pair_matrices(s: Prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(iou, giou, l1)``, each ``(N, M)``, of the sample's predictions against its GT."""
    got = s.cache.get(PAIRS)
    if got is None and BUCKET in s.cache:
        bucket, j = s.cache[BUCKET]
        b = bucket.blocks[j]
        got = s.cache[PAIRS] = (b[0], b[1], b[2])
    if got is None:
        pred, gt = s.pred, s.truth.boxes
        assert gt is not None
        if pred.shape[0] == 0 or gt.shape[0] == 0:
            z = np.zeros((pred.shape[0], gt.shape[0]))
            got = (z, z, z)
        else:
            iou, giou = iou_giou_matrix(pred, gt)
            got = (iou, giou, l1_matrix(pred, gt, norm_size(s)))
        s.cache[PAIRS] = got
    return got


def precompute(items: Sequence[Prepared], cost_weights: Iterable[tuple[float, float]] = ()) -> None:
    """Fill ``cache["pred"]`` (pixel boxes) and ``cache["pairs"]`` for every box sample, and
    the Hungarian cost for each ``(λ_L1, λ_giou)`` of ``cost_weights`` (see :func:`cost_key`).

    Samples are bucketed by their shape ``(N, M)``; each bucket is one broadcast computation
    on ``(S_b, N, M)`` arrays (no padding, no per-pair gathers).
    """
    weights = list(cost_weights)
    box = [s for s in items if isinstance(s.answer, BoxAnswer) and s.truth.boxes is not None]
    if not box:
        return
    answers: list[BoxAnswer] = [s.answer for s in box]  # type: ignore[misc]
    ns = [a.n for a in answers]
    pred = np.concatenate([a.boxes for a in answers])  # a copy: scaled in place below
    inverted = (pred[:, 2] < pred[:, 0]) | (pred[:, 3] < pred[:, 1])
    if inverted.any():
        owner = np.repeat(np.arange(len(ns)), ns)
        counts = np.bincount(owner[inverted], minlength=len(ns)).tolist()
        for a, k in zip(answers, counts, strict=True):
            a.n_inverted = k
    else:
        for a in answers:
            a.n_inverted = 0
    frames = [s.truth.frame for s in box]
    scales = np.array([frame_scale(f) for f in frames], dtype=np.float64).reshape(-1, 2)
    pred *= np.repeat(np.tile(scales, 2), ns, axis=0)
    _clip(pred, frames, ns)
    np.maximum(pred[:, 2], pred[:, 0], out=pred[:, 2])  # inverted → zero-area (geometry.canonical)
    np.maximum(pred[:, 3], pred[:, 1], out=pred[:, 3])
    buckets: dict[tuple[int, int], list[int]] = {}
    starts = []
    off = 0
    for i, (s, n) in enumerate(zip(box, ns, strict=True)):
        starts.append(off)
        off += n
        m = s.truth.boxes.shape[0]  # type: ignore[union-attr]
        if n and m:
            buckets.setdefault((n, m), []).append(i)
        else:
            pair_matrices(s)
    sizes: dict[int, tuple[float, float]] = {}
    for (n, _m), idx in buckets.items():
        group = [box[i] for i in idx]
        rows = (np.array([starts[i] for i in idx])[:, None] + np.arange(n)).ravel()
        p = pred[rows].reshape(len(idx), n, 4)
        g = np.stack([s.truth.boxes for s in group])  # type: ignore[misc]
        size = np.array([_size_of(s, sizes) for s in group])
        blocks = _bucket_blocks(p, g, np.tile(size, 2)[:, None, :], weights)
        keys = [cost_key(lw, gw) for lw, gw in weights]
        bucket = Bucket(blocks, keys)
        for j, s in enumerate(group):  # views are made on demand (pair_matrices, cost_of)
            s.cache[BUCKET] = (bucket, j)


def _clip(pred: np.ndarray, frames: list, ns: list[int]) -> None:
    """:func:`~services.reward.scoring.geometry.clip_to_image` for the rows of every sample
    at once (rows of a sample without an image size are left alone)."""
    sizes = [clip_size(f) for f in frames]
    if all(z is None for z in sizes):
        return
    inf = float("inf")
    hi = np.array([z if z is not None else (inf, inf) for z in sizes], dtype=np.float64)
    lo = np.array([0.0 if z is not None else -inf for z in sizes], dtype=np.float64)
    hi_rows = np.repeat(np.tile(hi, 2), ns, axis=0)
    lo_rows = np.repeat(lo, ns)[:, None]
    np.clip(pred, lo_rows, hi_rows, out=pred)


def _bucket_blocks(
    p: np.ndarray, g: np.ndarray, size: np.ndarray, weights: list[tuple[float, float]]
) -> np.ndarray:
    """``(S, 3 + len(weights), N, M)``: IoU, GIoU, L1 and each cost, for ``p: (S, N, 4)``,
    ``g: (S, M, 4)`` pixel boxes and ``size: (S, 1, 4)`` = (W, H, W, H).

    IoU and GIoU are ``geometry.overlap`` / ``iou_giou_of`` (the code of
    ``iou_giou_matrix``) on contiguous ``(S, N, 1)`` × ``(S, 1, M)`` operands, written straight
    into the output; L1 repeats ``l1_matrix``'s operations in its order (bit-identical)."""
    s_, n, _ = p.shape
    m = g.shape[1]
    out = np.empty((s_, 3 + len(weights), n, m))
    px1, py1, px2, py2 = (np.ascontiguousarray(p[:, :, k])[:, :, None] for k in range(4))
    gx1, gy1, gx2, gy2 = (np.ascontiguousarray(g[:, :, k])[:, None, :] for k in range(4))
    inter, union, enclosing = overlap((px1, py1, px2, py2), (gx1, gy1, gx2, gy2))
    iou, giou, l1 = out[:, 0], out[:, 1], out[:, 2]
    iou_giou_of(inter, union, enclosing, out=(iou, giou))
    pn, gn = p / size, g / size  # (S, N, 4), (S, M, 4) in image fractions
    # Σ over the 4 coordinates written out (numpy reduces a length-4 last axis slowly), on
    # contiguous (S, N, 1) × (S, 1, M) operands
    tmp = np.empty_like(l1)
    for k in range(4):
        pk = np.ascontiguousarray(pn[:, :, k])[:, :, None]
        gk = np.ascontiguousarray(gn[:, :, k])[:, None, :]
        dst = l1 if k == 0 else tmp
        np.subtract(pk, gk, out=dst)
        np.abs(dst, out=dst)
        if k:
            l1 += tmp
    for w, (lw, gw) in enumerate(weights, start=3):
        c = out[:, w]
        np.subtract(1.0, giou, out=c)
        c *= gw
        c += lw * l1
    return out


def cost_of(s: Prepared, l1_weight: float, giou_weight: float) -> np.ndarray | None:
    """The precomputed Hungarian cost ``(N, M)`` of a sample, or None."""
    got = s.cache.get(BUCKET)
    if got is None:
        return None
    bucket, j = got
    key = cost_key(l1_weight, giou_weight)
    return bucket.blocks[j, 3 + bucket.keys.index(key)] if key in bucket.keys else None


def cost_key(l1_weight: float, giou_weight: float) -> tuple[str, float, float]:
    """Cache key of the precomputed Hungarian cost λ_L1·L1 + λ_giou·(1 − GIoU) of a sample."""
    return ("cost", l1_weight, giou_weight)


def _size_of(s: Prepared, memo: dict[int, tuple[float, float]]) -> tuple[float, float]:
    if s.truth.frame.image_size is None:
        return norm_size(s)
    key = id(s.truth)
    got = memo.get(key)
    if got is None:
        got = memo[key] = norm_size(s)
    return got
