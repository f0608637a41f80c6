"""COCO mAP (all 12 stats) and Visual-RFT's few-shot mean per-class AP over run records.

Records → COCO:

* image: ``meta["image_id"]`` when several records share an image (Visual-RFT prompts once per
  (image, category)), else the record id. Images get ids 1..N in key order (numeric ids
  numerically, as pycocotools sorts them) and detections keep emission order inside an image,
  so ties between equal scores (score-less MLLMs, two-decimal confidences) break the same way
  on every run and as in pycocotools (relabelling the images of a score-less set moves AP by
  about ±0.01; docs/metrics.md, "Score-less detections").
* GT: each record's solution boxes, labelled by ``solution.labels``, else the asked category
  ``meta["category"]``, else one class ``"object"``; ``meta["iscrowd"]`` / ``meta["areas"]``
  (lists aligned with the boxes) override the defaults 0 / box area.
* detections: the parsed boxes; label = asked category, else the box's label, else
  ``"object"``; score = the model's confidence, else 1.0. A detection whose label has no
  category in the GT is dropped (COCOeval ignores it either way: it only loops over GT
  categories' ids, and a category without GT has no AP).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.benchmark.metrics.bootstrap import NO_INTERVAL, Interval, bootstrap_statistic
from services.benchmark.metrics.coco_engine import STAT_NAMES, CocoResult, Engine, coco_evaluate
from services.benchmark.metrics.operating_point import operating_point
from services.benchmark.metrics.registry import metrics
from services.benchmark.records import EvalRecord, MetricValue

DEFAULT_LABEL = "object"
ImageKey = int | str
DEFAULT_COCO_BOOT = 100  # each resample is a full COCOeval


@dataclass(frozen=True)
class CocoSet:
    """Per-image GT annotations and detections, before ids are assigned."""

    image_keys: tuple[ImageKey, ...]
    categories: tuple[str, ...]
    gt: dict[ImageKey, list[dict[str, Any]]]  # key -> [{label, box xyxy, area, iscrowd}]
    dt: dict[ImageKey, list[dict[str, Any]]]  # key -> [{label, box xyxy, score}]

    def to_coco(
        self, keys: Sequence[ImageKey] | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """COCO dicts for ``keys`` (default all images; repeats allowed: bootstrap)."""
        keys = self.image_keys if keys is None else keys
        cat_id = {c: i + 1 for i, c in enumerate(self.categories)}
        images, anns, dets = [], [], []
        for img_id, key in enumerate(keys, start=1):
            images.append({"id": img_id})
            for g in self.gt.get(key, []):
                x1, y1, x2, y2 = g["box"]
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": img_id,
                        "category_id": cat_id[g["label"]],
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": g["area"],
                        "iscrowd": g["iscrowd"],
                    }
                )
            for d in self.dt.get(key, []):
                if d["label"] not in cat_id:
                    continue
                x1, y1, x2, y2 = d["box"]
                dets.append(
                    {
                        "image_id": img_id,
                        "category_id": cat_id[d["label"]],
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": d["score"],
                    }
                )
        cats = [{"id": cat_id[c], "name": c} for c in self.categories]
        return {"images": images, "categories": cats, "annotations": anns}, dets


def records_to_coco(records: Sequence[EvalRecord], *, dedupe_exact: bool = False) -> CocoSet:
    """Group records by image and collect GT and detections (rules in the module docstring).

    ``dedupe_exact``: drop a record's boxes that repeat an earlier box of the same record
    exactly (Visual-RFT's COCO evaluation does this before scoring).
    """
    gt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    dt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        key: ImageKey = r.meta.get("image_id", r.id)
        asked = r.meta.get("category")
        boxes = r.solution.get("boxes") or []
        labels = r.solution.get("labels") or [asked or DEFAULT_LABEL] * len(boxes)
        crowd = r.meta.get("iscrowd") or [0] * len(boxes)
        areas = r.meta.get("areas") or [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
        gt[key].extend(
            {"label": str(lab), "box": tuple(b), "area": float(a), "iscrowd": int(c)}
            for b, lab, a, c in zip(boxes, labels, areas, crowd, strict=True)
        )
        dt.setdefault(key, [])
        seen: set[tuple[float, ...]] = set()
        for p in r.boxes or ():
            if dedupe_exact:
                if p.box in seen:
                    continue
                seen.add(p.box)
            label = asked or p.label or DEFAULT_LABEL
            dt[key].append(
                {"label": str(label), "box": p.box, "score": 1.0 if p.score is None else p.score}
            )
    cats = sorted({g["label"] for anns in gt.values() for g in anns})
    keys = tuple(sorted(set(gt) | set(dt), key=image_order))
    return CocoSet(keys, tuple(cats), dict(gt), dict(dt))


def image_order(key: ImageKey) -> tuple[int, float, str]:
    """Numeric image ids in numeric order (as pycocotools' ``sorted(imgIds)``), then strings.

    The order decides how equal scores tie across images in the PR curve, so it must be the
    one pycocotools uses for the same ids.
    """
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return (0, float(key), "")
    return (1, 0.0, str(key))


def evaluate_set(
    cset: CocoSet, keys: Sequence[str] | None = None, engine: Engine = "faster"
) -> CocoResult:
    gt, dets = cset.to_coco(keys)
    return coco_evaluate(gt, dets, engine=engine)


def _image_bootstrap(cset: CocoSet, stat: Any, n_boot: int, seed: int, engine: Engine) -> Interval:
    """Bootstrap over images: resample image keys with replacement, re-run COCOeval."""
    keys = np.array(cset.image_keys, dtype=object)

    def one(idx: np.ndarray) -> float:
        return float(stat(evaluate_set(cset, list(keys[idx]), engine)))

    return bootstrap_statistic(len(keys), one, n_boot=n_boot, seed=seed)


@metrics.register("coco_map")
def coco_map(
    records: Sequence[EvalRecord],
    *,
    n_boot: int,
    seed: int,
    engine: Engine = "faster",
    boot: int = DEFAULT_COCO_BOOT,
    prefix: str = "coco/",
) -> list[MetricValue]:
    """COCOeval bbox ``stats[0:12]`` (AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l).

    ``AP`` = mean over IoU thresholds .50:.05:.95, the 101 recall points and the categories
    with GT of the interpolated precision (pycocotools ``cocoeval.py``). A bootstrap over
    images (``min(n_boot, boot)`` resamples, each a full evaluation) gives the interval of AP.
    """
    cset = records_to_coco(records)
    res = evaluate_set(cset, engine=engine)
    b = min(n_boot, boot)
    ci = _image_bootstrap(cset, lambda r: r.stats[0], b, seed, engine) if b >= 2 else NO_INTERVAL
    out = []
    n_img = len(cset.image_keys)
    for i, (name, value) in enumerate(zip(STAT_NAMES, res.stats, strict=True)):
        iv = ci if i == 0 else NO_INTERVAL
        out.append(MetricValue(f"{prefix}{name}", value, True, iv.stderr, iv.low, iv.high, n_img))
    p, r, f = operating_point(cset.gt, cset.dt, cset.categories, 0.5).prf()
    out += [
        MetricValue(f"{prefix}P@0.5", p, True, n=n_img),
        MetricValue(f"{prefix}R@0.5", r, True, n=n_img),
        MetricValue(f"{prefix}F1@0.5", f, True, n=n_img),
    ]
    return out


def per_class_ap(res: CocoResult, categories: Sequence[str]) -> dict[str, float]:
    """AP@[.5:.95] per category, area all, maxDets 100: mean of ``precision[:, :, k, 0, -1]``
    over cells > -1 (Visual-RFT ``evaluation.ipynb``); categories without GT are left out."""
    out = {}
    for k, name in enumerate(categories):
        p = res.precision[:, :, k, 0, -1]
        p = p[p > -1]
        if p.size:
            out[name] = float(p.mean())
    return out


def _mean_selected(
    res: CocoResult, categories: Sequence[str], classes: Sequence[str] | None
) -> float:
    ap = per_class_ap(res, categories)
    chosen = [c for c in (classes if classes is not None else ap) if c in ap]
    return float(np.mean([ap[c] for c in chosen])) if chosen else 0.0


@metrics.register("virft_fewshot_ap")
def virft_fewshot_ap(
    records: Sequence[EvalRecord],
    *,
    n_boot: int,
    seed: int,
    classes: Sequence[str] | None = None,
    engine: Engine = "faster",
    boot: int = DEFAULT_COCO_BOOT,
    prefix: str = "virft/",
    dedupe_exact: bool = True,
) -> list[MetricValue]:
    """Visual-RFT's few-shot "mAP": the mean over the selected classes (default: every class
    with GT) of per-class AP@[.5:.95], plus each class's AP as ``{prefix}AP/<class>``.

    A selected class without any GT is skipped (it has no AP), as in the notebook. Exact
    duplicate boxes within a record are dropped first (``dedupe_exact``, as Visual-RFT does).
    """
    cset = records_to_coco(records, dedupe_exact=dedupe_exact)
    res = evaluate_set(cset, engine=engine)
    ap = per_class_ap(res, cset.categories)
    chosen = [c for c in (classes if classes is not None else ap) if c in ap]
    value = float(np.mean([ap[c] for c in chosen])) if chosen else 0.0
    b = min(n_boot, boot)
    iv = (
        _image_bootstrap(
            cset, lambda r: _mean_selected(r, cset.categories, chosen), b, seed, engine
        )
        if b >= 2
        else NO_INTERVAL
    )
    out = [
        MetricValue(f"{prefix}mAP", value, True, iv.stderr, iv.low, iv.high, len(cset.image_keys))
    ]
    out += [MetricValue(f"{prefix}AP/{c}", ap[c], True, n=len(cset.image_keys)) for c in chosen]
    return out
