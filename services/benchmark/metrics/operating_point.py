"""Precision / recall / F1 at the model's single operating point (every emitted box).

AP integrates over score thresholds; a score-less MLLM (every box scored 1.0) has one
operating point and its AP depends on tie order (docs/metrics.md), so we report the
operating point next to AP. Matching per (image, category) is COCOeval's greedy rule at one
IoU threshold, area "all", no maxDets cut (pycocotools ``evaluateImg``):

* detections in descending score (stable: emission order breaks ties); GT non-crowd first;
* a detection takes, among GT not yet matched (crowd GT may be matched repeatedly), the one
  with the highest IoU ≥ τ (a later GT wins an exact tie), never leaving a non-crowd match
  for a crowd one;
* IoU with a crowd GT is |d ∩ g| / |d|; a detection matched to crowd GT is ignored.

TP = matched to non-crowd GT, FP = unmatched, P = TP / (TP + FP), R = TP / #non-crowd GT,
F1 = 2PR / (P + R) (0 when TP = 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Counts:
    tp: int
    fp: int
    n_gt: int

    def __add__(self, o: Counts) -> Counts:
        return Counts(self.tp + o.tp, self.fp + o.fp, self.n_gt + o.n_gt)

    def prf(self) -> tuple[float, float, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / self.n_gt if self.n_gt else 0.0
        f = 2 * p * r / (p + r) if self.tp else 0.0
        return p, r, f


def coco_ious(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """``(D, G)`` IoU of xyxy boxes; columns of crowd GT use |d ∩ g| / |d| (pycocotools)."""
    if dets.size == 0 or gts.size == 0:
        return np.zeros((len(dets), len(gts)))
    iw = np.clip(
        np.minimum(dets[:, None, 2], gts[None, :, 2])
        - np.maximum(dets[:, None, 0], gts[None, :, 0]),
        0,
        None,
    )
    ih = np.clip(
        np.minimum(dets[:, None, 3], gts[None, :, 3])
        - np.maximum(dets[:, None, 1], gts[None, :, 1]),
        0,
        None,
    )
    inter = iw * ih
    ad = ((dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1]))[:, None]
    ag = ((gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1]))[None, :]
    union = np.where(crowd[None, :], ad, ad + ag - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match_counts(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_boxes: np.ndarray,
    gt_crowd: np.ndarray,
    tau: float = 0.5,
) -> Counts:
    """COCO greedy matching of one (image, category) at IoU threshold ``tau``."""
    order = np.argsort(-det_scores, kind="mergesort")
    gorder = np.argsort(gt_crowd.astype(int), kind="mergesort")  # non-crowd first
    dets, gts, crowd = det_boxes[order], gt_boxes[gorder], gt_crowd[gorder].astype(bool)
    ious = coco_ious(dets, gts, crowd)
    matched = np.zeros(len(gts), dtype=bool)
    tp = fp = 0
    thr = min(tau, 1 - 1e-10)
    for d in range(len(dets)):
        best, m = thr, -1
        for g in range(len(gts)):
            if matched[g] and not crowd[g]:
                continue
            if m > -1 and not crowd[m] and crowd[g]:
                break
            if ious[d, g] < best:
                continue
            best, m = ious[d, g], g
        if m == -1:
            fp += 1
        else:
            matched[m] = True
            tp += int(not crowd[m])
    return Counts(tp, fp, int((~crowd).sum()))


def operating_point(
    gt: dict[str, list[dict[str, Any]]],
    dt: dict[str, list[dict[str, Any]]],
    categories: Sequence[str],
    tau: float = 0.5,
) -> Counts:
    """Sum of :func:`match_counts` over images and categories (``CocoSet`` layout)."""
    total = Counts(0, 0, 0)
    cats = set(categories)
    for key in set(gt) | set(dt):
        for cat in cats:
            g = [a for a in gt.get(key, []) if a["label"] == cat]
            d = [a for a in dt.get(key, []) if a["label"] == cat]
            if not g and not d:
                continue
            total += match_counts(
                np.array([a["box"] for a in d], dtype=np.float64).reshape(-1, 4),
                np.array([a["score"] for a in d], dtype=np.float64),
                np.array([a["box"] for a in g], dtype=np.float64).reshape(-1, 4),
                np.array([bool(a["iscrowd"]) for a in g], dtype=bool),
                tau,
            )
    return total
