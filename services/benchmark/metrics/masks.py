"""Mask intersection / union as LISA computes them (dvlab-research/LISA ``train_ds.validate``).

The GT mask is ``uint8`` with 0 = background, 1 = object, 255 = ignore; ignored pixels count
in neither the intersection nor the union. The prediction is boolean (``logits > 0``).
Masks in records are numpy arrays, nested lists, or COCO RLE dicts (``{"size", "counts"}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from services.benchmark.records import EvalRecord

IGNORE = 255


def mask_inter_union(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """``(I, U)`` of the foreground class over pixels where ``gt != 255``.

    pred: ``(H, W)`` bool; gt: ``(H, W)`` uint8 in {0, 1, 255}.
    """
    pred = np.asarray(pred).astype(bool)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: prediction {pred.shape}, ground truth {gt.shape}")
    valid = gt != IGNORE
    g = (gt == 1) & valid
    p = pred & valid
    return float(np.count_nonzero(p & g)), float(np.count_nonzero(p | g))


def decode_mask(m: Any) -> np.ndarray:
    """A mask from an array, nested lists, or a COCO RLE dict (pycocotools ``mask.decode``)."""
    if isinstance(m, dict):
        from pycocotools import mask as mask_utils

        rle = dict(m)
        if isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode()
        return mask_utils.decode(rle)
    return np.asarray(m)


def records_mask_inter_union(records: Sequence[EvalRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Per record ``(I_i, U_i)`` from ``meta["pred_mask"]`` and ``meta["gt_mask"]``."""
    pairs = [
        mask_inter_union(decode_mask(r.meta["pred_mask"]), decode_mask(r.meta["gt_mask"]))
        for r in records
    ]
    arr = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]
