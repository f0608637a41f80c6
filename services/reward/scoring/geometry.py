"""Box geometry and coordinate frames (vectorised numpy).

Boxes are ``(N, 4)`` float64 arrays ``[x1, y1, x2, y2]`` in original-image pixels. A
predicted box that is inverted (``x2 < x1`` or ``y2 < y1``) is canonicalised by
:func:`canonical` to a zero-area box at its first corner, so it overlaps nothing
(IoU 0 with every box) and still counts as a prediction (a false positive).
"""

from __future__ import annotations

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


def canonical(boxes: np.ndarray) -> np.ndarray:
    """Inverted boxes become zero-area boxes at ``(x1, y1)``: ``x2 ← max(x1, x2)``, same for y."""
    if boxes.shape[0] == 0:
        return boxes
    out = boxes.copy()
    np.maximum(out[:, 2], out[:, 0], out=out[:, 2])
    np.maximum(out[:, 3], out[:, 1], out=out[:, 3])
    return out


def iou_giou_matrix(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise IoU and GIoU (Rezatofighi et al., CVPR 2019) of ``a: (N, 4)`` and ``b: (M, 4)``.

    I = |a ∩ b| (0 without positive overlap), U = |a| + |b| − I, C = area of the smallest box
    enclosing both. IoU = I / U (0 when U = 0); GIoU = IoU − (C − U) / C (= IoU when C = 0).
    Continuous areas, no +1-pixel convention. Returns two ``(N, M)`` arrays;
    IoU ∈ [0, 1], GIoU ∈ [−1, 1].
    """
    ax1, ay1, ax2, ay2 = (a[:, i : i + 1] for i in range(4))
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    iw = np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    ih = np.minimum(ay2, by2) - np.maximum(ay1, by1)
    inter = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None)
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    union = area_a + area_b - inter
    cw = np.maximum(ax2, bx2) - np.minimum(ax1, bx1)
    ch = np.maximum(ay2, by2) - np.minimum(ay1, by1)
    enclosing = cw * ch
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0.0, inter / union, 0.0)
        giou = np.where(enclosing > 0.0, iou - (enclosing - union) / enclosing, iou)
    return iou, giou


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
