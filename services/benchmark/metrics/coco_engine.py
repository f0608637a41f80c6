"""COCO bbox evaluation engines with one interface and pycocotools-exact results.

``coco_evaluate(gt, detections, engine=...)`` runs COCOeval (bbox, default params:
IoU thresholds .50:.05:.95, 101 recall points, areas all/small/medium/large, maxDets 1/10/100)
and returns the 12 summary statistics and the ``precision`` array
``(T=10, R=101, K, A=4, M=3)``.

Engines:

* ``faster`` (default): faster-coco-eval's C++ evaluate+accumulate, shown bit-identical to
  pycocotools on synthetic sets (docs/metrics.md, "Parity and speed") and checked here by a
  parity test.
* ``pycocotools``: the reference implementation (cocodataset/cocoapi ``cocoeval.py``).

Inputs are plain COCO dicts; both are copied, never mutated (pycocotools' ``loadRes`` mutates
its input). An empty detection list is handled explicitly (pycocotools ``loadRes([])`` raises
IndexError): every category with GT gets AP 0, exactly as COCOeval defines it. Custom
``maxDets`` are not offered (pycocotools reports AP = -1 without 100; torchmetrics #2560).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Engine = Literal["faster", "pycocotools"]

STAT_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
"""Names of COCOeval's ``stats[0:12]`` in order."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CocoResult:
    """The 12 COCO stats, the precision array ``(T, R, K, A, M)`` and its category ids (K)."""

    stats: tuple[float, ...]
    precision: np.ndarray
    cat_ids: tuple[int, ...]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(STAT_NAMES, self.stats, strict=True))


def detections_dataset(gt: dict[str, Any], detections: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A COCO result set as a dataset dict, as pycocotools' ``loadRes`` builds it for bbox.

    Each detection gets ``id = index + 1``, ``area = w·h`` and ``iscrowd = 0``; the input dicts
    are copied.
    """
    anns = []
    for i, d in enumerate(detections):
        x, y, w, h = (float(v) for v in d["bbox"])
        anns.append(
            {
                "id": i + 1,
                "image_id": d["image_id"],
                "category_id": d["category_id"],
                "bbox": [x, y, w, h],
                "score": float(d["score"]),
                "area": w * h,
                "iscrowd": 0,
            }
        )
    return {
        "images": list(gt.get("images", [])),
        "categories": list(gt.get("categories", [])),
        "annotations": anns,
    }


def _gt_copy(gt: dict[str, Any]) -> dict[str, Any]:
    return {
        "images": [dict(i) for i in gt.get("images", [])],
        "categories": [dict(c) for c in gt.get("categories", [])],
        "annotations": [dict(a) for a in gt.get("annotations", [])],
    }


def _run_faster(gt: dict[str, Any], dt: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(gt)
    coco_dt = COCO(dt)
    ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=logger.debug)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return np.asarray(ev.stats[:12], dtype=np.float64), ev.eval["precision"], list(ev.params.catIds)


def _run_pycocotools(
    gt: dict[str, Any], dt: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = COCO()
        coco_dt.dataset = dt
        coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:12], dtype=np.float64), ev.eval["precision"], list(ev.params.catIds)


_ENGINES: dict[str, Callable[..., tuple[np.ndarray, np.ndarray, list[int]]]] = {
    "faster": _run_faster,
    "pycocotools": _run_pycocotools,
}


def coco_evaluate(
    gt: dict[str, Any], detections: Sequence[dict[str, Any]], *, engine: Engine = "faster"
) -> CocoResult:
    """COCOeval bbox on a GT dataset dict and a list of ``{image_id, category_id, bbox, score}``.

    ``bbox`` is COCO ``[x, y, w, h]`` in pixels. GT annotations need ``id``, ``image_id``,
    ``category_id``, ``bbox``, ``area`` and ``iscrowd``.
    """
    if engine not in _ENGINES:
        raise ValueError(f"unknown COCO engine {engine!r}; use one of {sorted(_ENGINES)}")
    gt_c = _gt_copy(gt)
    n_cats = len(gt_c["categories"])
    if not detections:
        return _empty_result(gt_c, n_cats)
    stats, precision, cat_ids = _ENGINES[engine](gt_c, detections_dataset(gt_c, detections))
    return CocoResult(tuple(float(s) for s in stats), np.asarray(precision), tuple(cat_ids))


def _empty_result(gt: dict[str, Any], n_cats: int) -> CocoResult:
    """No detections at all: precision/recall are 0 where a category has GT, -1 elsewhere.

    Per COCOeval, a stat averages the cells > -1; with no detections every such cell is 0, so
    each stat is 0 when its (area range) has any non-ignored GT, else -1.
    """
    cat_ids = sorted(c["id"] for c in gt["categories"])
    precision = -np.ones((10, 101, n_cats, 4, 3))
    area_rngs = [(0, 1e10), (0, 32**2), (32**2, 96**2), (96**2, 1e10)]
    has_gt = np.zeros((n_cats, 4), dtype=bool)
    index = {c: k for k, c in enumerate(cat_ids)}
    for a in gt["annotations"]:
        if a.get("iscrowd", 0) or a.get("ignore", 0):
            continue
        for j, (lo, hi) in enumerate(area_rngs):
            if lo <= a["area"] <= hi:
                has_gt[index[a["category_id"]], j] = True
    precision[:, :, has_gt] = 0.0
    # stats order: AP all/.5/.75, AP s/m/l, AR 1/10/100 (area all), AR s/m/l
    per_area = [0.0 if has_gt[:, j].any() else -1.0 for j in range(4)]
    stats = [per_area[0]] * 3 + per_area[1:] + [per_area[0]] * 3 + per_area[1:]
    return CocoResult(tuple(stats), precision, tuple(cat_ids))
