"""Box metrics over run records: RefCOCO Acc@τ and LISA-style box gIoU / cIoU.

Boxes are ``[x1, y1, x2, y2]`` in original-image pixels (already mapped through the task's
frame when the completion was parsed). A completion that did not parse, or gave no box,
counts as a miss with IoU 0 (both lmms-eval and VLMEvalKit keep every expression in the
denominator).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.benchmark.metrics.bootstrap import bootstrap_mean, bootstrap_ratio
from services.benchmark.metrics.registry import metrics
from services.benchmark.records import EvalRecord, MetricValue
from services.reward.scoring.geometry import box_area, paired_inter_union, paired_iou

LISA_GIOU_EPS = 1e-5
LISA_CIOU_EPS = 1e-10


def _first_pred(r: EvalRecord) -> tuple[float, float, float, float] | None:
    return r.boxes[0].box if r.boxes else None


def _gt_box(r: EvalRecord) -> tuple[float, float, float, float] | None:
    boxes = r.solution.get("boxes") or []
    return tuple(boxes[0]) if boxes else None  # type: ignore[return-value]


def _pairs(records: Sequence[EvalRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(both, p, g)``: which records have a prediction and a GT box, and those boxes
    ``(K, 4)`` in record order."""
    both = np.zeros(len(records), dtype=bool)
    p_rows, g_rows = [], []
    for i, r in enumerate(records):
        p, g = _first_pred(r), _gt_box(r)
        if p is not None and g is not None:
            both[i] = True
            p_rows.append(p)
            g_rows.append(g)
    return both, _as_boxes(p_rows), _as_boxes(g_rows)


def _as_boxes(rows: list) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def grounding_ious(records: Sequence[EvalRecord]) -> np.ndarray:
    """IoU of each record's first predicted box with its (single) GT box; 0 for a miss
    (:func:`services.reward.scoring.geometry.paired_iou`: inverted boxes have area 0)."""
    out = np.zeros(len(records))
    both, p, g = _pairs(records)
    out[both] = paired_iou(p, g)
    return out


def _fmt(t: float) -> str:
    return f"{t:g}"


@metrics.register("refcoco_acc50")
def refcoco_acc(
    records: Sequence[EvalRecord],
    *,
    n_boot: int,
    seed: int,
    thresholds: Sequence[float] = (0.5,),
    prefix: str = "refcoco/",
) -> list[MetricValue]:
    """Acc@τ = (1/N) Σ_i [IoU(p_i, g_i) ≥ τ] over every expression (τ = 0.5 by default, ``≥`` as
    in lmms-eval and VLMEvalKit), the mean IoU, and the parse-failure rate (lower is better)."""
    ious = grounding_ious(records)
    n = len(records)
    out = []
    for t in thresholds:
        hits = (ious >= t).astype(np.float64)
        out.append(_mean_metric(f"{prefix}acc@{_fmt(t)}", hits, n_boot, seed))
    out.append(_mean_metric(f"{prefix}mean_iou", ious, n_boot, seed))
    fails = np.array([r.boxes is None for r in records], dtype=np.float64)
    out.append(
        MetricValue(f"{prefix}parse_fail_rate", float(fails.mean()) if n else 0.0, False, n=n)
    )
    return out


def _mean_metric(
    name: str, values: np.ndarray, n_boot: int, seed: int, hib: bool = True
) -> MetricValue:
    iv = bootstrap_mean(values, n_boot=n_boot, seed=seed)
    value = float(values.mean()) if values.size else 0.0
    return MetricValue(name, value, hib, iv.stderr, iv.low, iv.high, int(values.size))


def lisa_box_inter_union(records: Sequence[EvalRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Per record ``(I_i, U_i)`` of the first predicted box vs the GT box, in pixels².

    No GT box and no prediction: ``(0, 0)``; a miss: ``(0, |g|)``; no GT but a prediction:
    ``(0, |p|)``.
    """
    inter = np.zeros(len(records))
    union = np.zeros(len(records))
    both, p, g = _pairs(records)
    inter[both], union[both] = paired_inter_union(p, g)
    idx, alone = [], []  # records with exactly one of the two boxes: U = its area
    for i, r in enumerate(records):
        box = None if both[i] else (_gt_box(r) or _first_pred(r))
        if box is not None:
            idx.append(i)
            alone.append(box)
    union[idx] = box_area(_as_boxes(alone))
    return inter, union


def giou_terms(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """LISA's per-sample IoU: ``I / (U + 1e-5)``, and 1.0 where GT and prediction are both
    empty (``U = 0``) (dvlab-research/LISA ``utils.AverageMeter`` usage in ``validate``)."""
    terms = inter / (union + LISA_GIOU_EPS)
    return np.where(union == 0, 1.0, terms)


def giou_ciou_metrics(
    inter: np.ndarray, union: np.ndarray, *, prefix: str, n_boot: int, seed: int
) -> list[MetricValue]:
    """gIoU = mean_i I_i/(U_i + 1e-5) and cIoU = Σ I_i / (Σ U_i + 1e-10) (LISA)."""
    n = int(inter.size)
    giou = _mean_metric(f"{prefix}giou", giou_terms(inter, union), n_boot, seed)
    ciou_value = float(inter.sum() / (union.sum() + LISA_CIOU_EPS)) if n else 0.0
    iv = bootstrap_ratio(inter, union, eps=LISA_CIOU_EPS, n_boot=n_boot, seed=seed)
    ciou = MetricValue(f"{prefix}ciou", ciou_value, True, iv.stderr, iv.low, iv.high, n)
    return [giou, ciou]


@metrics.register("lisa_giou_ciou")
def lisa_giou_ciou(
    records: Sequence[EvalRecord],
    *,
    n_boot: int,
    seed: int,
    prefix: str = "lisa/",
    mask: bool = True,
) -> list[MetricValue]:
    """LISA gIoU / cIoU on boxes (``{prefix}box_giou``, ``{prefix}box_ciou``) and, when every
    record carries masks (``meta["gt_mask"]``, ``meta["pred_mask"]``), on masks too."""
    inter, union = lisa_box_inter_union(records)
    out = giou_ciou_metrics(inter, union, prefix=f"{prefix}box_", n_boot=n_boot, seed=seed)
    if mask and records and all("gt_mask" in r.meta and "pred_mask" in r.meta for r in records):
        from services.benchmark.metrics.masks import records_mask_inter_union

        mi, mu = records_mask_inter_union(records)
        out += giou_ciou_metrics(mi, mu, prefix=f"{prefix}mask_", n_boot=n_boot, seed=seed)
    return out
