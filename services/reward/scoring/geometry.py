"""Box geometry and coordinate frames (vectorised numpy).

Boxes are ``(N, 4)`` float64 arrays ``[x1, y1, x2, y2]`` in original-image pixels. A
predicted box that is inverted (``x2 < x1`` or ``y2 < y1``) is canonicalised by
:func:`canonical` to a zero-area box at its first corner, so it overlaps nothing
(IoU 0 with every box) and still counts as a prediction (a false positive).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from schemas.geometry import Frame

EMPTY = np.zeros((0, 4), dtype=np.float64)


def frame_scale(frame: Frame) -> tuple[float, float]:
    """``(sx, sy)`` with ``pixel = raw · (sx, sy, sx, sy)`` for the frame's coordinates.

    pixel: (1, 1); input: (W / w_in, H / h_in); norm1000: (W / 1000, H / 1000); norm1: (W, H).
    """
    if frame.coords == "pixel":
        return 1.0, 1.0
    w, h = frame.image_size  # type: ignore[misc]  # the schema guarantees it for these frames
    if frame.coords == "input":
        iw, ih = frame.input_size  # type: ignore[misc]
        return w / iw, h / ih
    if frame.coords == "norm1000":
        return w / 1000.0, h / 1000.0
    return float(w), float(h)


def frame_extent(frame: Frame) -> tuple[float, float] | None:
    """Largest valid ``(x, y)`` in the frame's own units, or None when unknown (pixel, no size)."""
    if frame.coords == "norm1000":
        return 1000.0, 1000.0
    if frame.coords == "norm1":
        return 1.0, 1.0
    if frame.coords == "input":
        iw, ih = frame.input_size  # type: ignore[misc]
        return float(iw), float(ih)
    if frame.image_size is None:
        return None
    return float(frame.image_size[0]), float(frame.image_size[1])


def to_pixels(raw: np.ndarray, frame: Frame) -> np.ndarray:
    """Map ``raw: (N, 4)`` completion numbers to original-image pixels through ``frame``."""
    sx, sy = frame_scale(frame)
    if sx == 1.0 and sy == 1.0:
        return raw
    return raw * np.array((sx, sy, sx, sy))


def from_pixels(boxes: np.ndarray, frame: Frame) -> np.ndarray:
    """Inverse of :func:`to_pixels`: pixel boxes ``(N, 4)`` written in the frame's units."""
    sx, sy = frame_scale(frame)
    return boxes / np.array((sx, sy, sx, sy))


CLIP_MARGIN = 0.10
"""Predicted coordinates may overshoot the frame's range by this fraction of the range; they
are then clipped to the image. Further out is ``bad_frame`` (the numbers do not belong to the
declared frame)."""


def clip_size(frame: Frame) -> tuple[float, float] | None:
    """``(W, H)`` that predicted pixel boxes are clipped to, or None (pixel frame, no size)."""
    if frame.image_size is None:
        return None
    return float(frame.image_size[0]), float(frame.image_size[1])


def clip_to_image(boxes: np.ndarray, size: tuple[float, float] | None) -> np.ndarray:
    """Clip pixel boxes ``(N, 4)`` in place to ``[0, W] × [0, H]`` (torchvision's
    ``clip_boxes_to_image``, detectron2's ``Boxes.clip``); returns the same array."""
    if size is None or boxes.shape[0] == 0:
        return boxes
    w, h = size
    np.clip(boxes[:, 0::2], 0.0, w, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0.0, h, out=boxes[:, 1::2])
    return boxes


def canonical(boxes: np.ndarray) -> np.ndarray:
    """Inverted boxes become zero-area boxes at ``(x1, y1)``: ``x2 ← max(x1, x2)``, same for y."""
    if boxes.shape[0] == 0:
        return boxes
    out = boxes.copy()
    np.maximum(out[:, 2], out[:, 0], out=out[:, 2])
    np.maximum(out[:, 3], out[:, 1], out=out[:, 3])
    return out


Coords = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""``(x1, y1, x2, y2)`` coordinate arrays of boxes; two of them broadcast against each other."""


def columns(boxes: np.ndarray) -> Coords:
    """The four coordinate columns ``(N,)`` of ``boxes: (N, 4)``."""
    return boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]


def overlap(a: Coords, b: Coords) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(I, U, C)`` of boxes ``a`` and ``b`` given as broadcastable coordinate arrays.

    I = |a ∩ b| (0 without positive overlap), U = |a| + |b| − I, C = area of the smallest box
    enclosing both; continuous areas, no +1-pixel convention. ``a`` as ``(N, 1)`` columns and
    ``b`` as ``(M,)`` give ``(N, M)`` matrices; equal shapes give one value per row pair.
    Areas are signed (``(x2 − x1)·(y2 − y1)``): pass :func:`canonical` boxes, where an
    inverted box has area 0.
    """
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    iw = np.minimum(ax2, bx2)
    iw -= np.maximum(ax1, bx1)
    ih = np.minimum(ay2, by2)
    ih -= np.maximum(ay1, by1)
    np.maximum(iw, 0.0, out=iw)
    np.maximum(ih, 0.0, out=ih)
    inter = iw
    inter *= ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1)
    union -= inter
    cw = np.maximum(ax2, bx2)
    cw -= np.minimum(ax1, bx1)
    ch = np.maximum(ay2, by2)
    ch -= np.minimum(ay1, by1)
    enclosing = cw
    enclosing *= ch
    return inter, union, enclosing


def iou_giou_of(
    inter: np.ndarray,
    union: np.ndarray,
    enclosing: np.ndarray,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """IoU = I / U (0 when U = 0) and GIoU = IoU − (C − U) / C (= IoU when C = 0), from the
    terms of :func:`overlap`; written into ``out`` (two arrays of the same shape) when given."""
    iou_, giou_ = out if out is not None else (np.empty_like(inter), np.empty_like(inter))
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(inter, union, out=iou_)
        if not (union > 0.0).all():  # rare: only zero-area boxes that do not overlap
            iou_[union <= 0.0] = 0.0
        gap = enclosing - union
        gap /= enclosing
    np.subtract(iou_, gap, out=giou_)
    if not (enclosing > 0.0).all():
        flat = enclosing <= 0.0
        giou_[flat] = iou_[flat]
    return iou_, giou_


def iou_giou_matrix(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise IoU and GIoU (Rezatofighi et al., CVPR 2019) of ``a: (N, 4)`` and ``b: (M, 4)``.

    I = |a ∩ b| (0 without positive overlap), U = |a| + |b| − I, C = area of the smallest box
    enclosing both. IoU = I / U (0 when U = 0); GIoU = IoU − (C − U) / C (= IoU when C = 0).
    Continuous areas, no +1-pixel convention. Returns two ``(N, M)`` arrays;
    IoU ∈ [0, 1], GIoU ∈ [−1, 1]. (:func:`overlap` and :func:`iou_giou_of` are the formula.)
    """
    a_cols = tuple(a[:, i : i + 1] for i in range(4))
    return iou_giou_of(*overlap(a_cols, columns(b)))  # type: ignore[arg-type]


def paired_inter_union(p: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``(I_i, U_i)`` of ``p[i]`` and ``g[i]`` for ``(N, 4)`` boxes (pixels²);
    inverted boxes count as zero-area (:func:`canonical`)."""
    inter, union, _ = overlap(columns(canonical(p)), columns(canonical(g)))
    return inter, union


def paired_iou(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Row-wise IoU of ``p[i]`` and ``g[i]`` for ``(N, 4)`` boxes; 0 when the union is empty."""
    inter, union = paired_inter_union(p, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0.0, inter / union, 0.0)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas ``(N,)`` of ``(N, 4)`` boxes; an inverted side counts as 0 (:func:`canonical`)."""
    c = canonical(boxes)
    return (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])


def iou(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """IoU of two single boxes ``[x1, y1, x2, y2]`` (see :func:`iou_giou_matrix`)."""
    m, _ = iou_giou_matrix(np.asarray(a, float).reshape(1, 4), np.asarray(b, float).reshape(1, 4))
    return float(m[0, 0])


def giou(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """GIoU of two single boxes ``[x1, y1, x2, y2]`` (see :func:`iou_giou_matrix`)."""
    _, g = iou_giou_matrix(np.asarray(a, float).reshape(1, 4), np.asarray(b, float).reshape(1, 4))
    return float(g[0, 0])


def l1_matrix(a: np.ndarray, b: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Pairwise L1 distance ``Σ_c |a_c − b_c| / s_c`` of ``(N, 4)`` and ``(M, 4)`` boxes.

    ``scale = (W, H)``: x coordinates are divided by W, y by H, so the distance is in
    image fractions (DETR's L1 term, on xyxy instead of cxcywh). Shape ``(N, M)``.
    """
    s = np.array((scale[0], scale[1], scale[0], scale[1]))
    an, bn = a / s, b / s
    return np.abs(an[:, None, :] - bn[None, :, :]).sum(axis=2)


# ---- exact arithmetic (threshold decisions near the boundary) ---------------------------------

ExactBox = tuple[Fraction, Fraction, Fraction, Fraction]


def exact(v: float) -> Fraction:
    """The number as the decimal it was written as: ``Fraction(repr(v))``.

    JSON numbers reach us as the nearest float; Python's ``repr`` is the shortest decimal
    that rounds back to the same float, so a coordinate written with ≤ 15 significant digits
    (``87.68``, ``0.137``) is recovered exactly — not as the binary value of its float.
    """
    return Fraction(repr(float(v))) if not isinstance(v, int) else Fraction(v)


def exact_scale(frame: Frame) -> tuple[Fraction, Fraction]:
    """:func:`frame_scale` in exact arithmetic (image and input sizes are integers)."""
    if frame.coords == "pixel":
        return Fraction(1), Fraction(1)
    w, h = frame.image_size  # type: ignore[misc]
    if frame.coords == "input":
        iw, ih = frame.input_size  # type: ignore[misc]
        return Fraction(w, iw), Fraction(h, ih)
    if frame.coords == "norm1000":
        return Fraction(w, 1000), Fraction(h, 1000)
    return Fraction(w), Fraction(h)


def exact_pred_box(raw: Sequence[float], frame: Frame) -> ExactBox:
    """A predicted box exactly as the float pipeline builds it: mapped to pixels, clipped to
    the image, inverted sides collapsed (:func:`canonical`)."""
    sx, sy = exact_scale(frame)
    x1, y1, x2, y2 = (exact(v) * s for v, s in zip(raw, (sx, sy, sx, sy), strict=True))
    size = frame.image_size
    if size is not None:
        w, h = Fraction(size[0]), Fraction(size[1])
        x1, x2 = (min(max(v, Fraction(0)), w) for v in (x1, x2))
        y1, y2 = (min(max(v, Fraction(0)), h) for v in (y1, y2))
    return x1, y1, max(x1, x2), max(y1, y2)


def exact_gt_box(box: Sequence[float]) -> ExactBox:
    x1, y1, x2, y2 = (exact(v) for v in box)
    return x1, y1, x2, y2


def exact_iou(a: ExactBox, b: ExactBox) -> Fraction:
    """IoU of two boxes in rational arithmetic (same definition as :func:`iou_giou_matrix`)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, Fraction(0)) * max(ih, Fraction(0))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else Fraction(0)
