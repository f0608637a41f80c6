"""DEVA image masking ``i' = i ∘ m`` before encoding (pixels outside the mask become black).

Two ways to give ``m`` (schemas.reward.PatchMask / ``mask_boxes``):

* a patch grid of ``R × C`` cells over the *whole* image: cell (r, c) covers pixel rows
  ``[⌊r·H/R⌋, ⌊(r+1)·H/R⌋)`` and columns likewise (pixel y belongs to row ``⌊y·R/H⌋``).
  With ``threshold`` a cell is kept when its score ≥ threshold, without it when its value
  ≥ 0.5 (so a 0/1 grid works as is). The grid is the policy's vision patch grid; mapping it
  proportionally onto the original image is exact when the policy's resize keeps the aspect
  ratio (Qwen-VL's ``smart_resize`` does, to within one patch).
* boxes ``[x1, y1, x2, y2]`` in original-image pixels: pixel columns ``⌊x1⌋ … ⌈x2⌉ − 1`` and
  rows ``⌊y1⌋ … ⌈y2⌉ − 1`` are kept (the union over boxes). An empty list keeps nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from schemas.reward import PatchMask


def grid_keep(mask: PatchMask) -> np.ndarray:
    """(R, C) bool: which patch cells are kept."""
    grid = np.asarray(mask.grid, dtype=np.float64)
    return grid >= (mask.threshold if mask.threshold is not None else 0.5)


def grid_to_pixels(keep: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Upsample an (R, C) bool grid to an (H, W) pixel mask for an image of ``size = (W, H)``."""
    w, h = size
    r, c = keep.shape
    rows = (np.arange(h) * r) // h
    cols = (np.arange(w) * c) // w
    return keep[rows[:, None], cols[None, :]]


def boxes_to_pixels(boxes: Sequence[Sequence[float]], size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: union of the boxes, clipped to the image."""
    w, h = size
    keep = np.zeros((h, w), dtype=bool)
    for x1, y1, x2, y2 in boxes:
        c0, c1 = max(0, math.floor(x1)), min(w, math.ceil(x2))
        r0, r1 = max(0, math.floor(y1)), min(h, math.ceil(y2))
        if c1 > c0 and r1 > r0:
            keep[r0:r1, c0:c1] = True
    return keep


def apply_mask(img: Image.Image, keep: np.ndarray) -> Image.Image:
    """``i ∘ m``: RGB pixels where ``keep`` is False set to 0."""
    arr = np.asarray(img.convert("RGB")).copy()
    arr[~keep] = 0
    return Image.fromarray(arr)


def mask_image(
    img: Image.Image,
    mask: PatchMask | None = None,
    mask_boxes: Sequence[Sequence[float]] | None = None,
) -> Image.Image:
    """The image to encode: unchanged without a mask, else ``i ∘ m``."""
    if mask is not None:
        return apply_mask(img, grid_to_pixels(grid_keep(mask), img.size))
    if mask_boxes is not None:
        return apply_mask(img, boxes_to_pixels(mask_boxes, img.size))
    return img
