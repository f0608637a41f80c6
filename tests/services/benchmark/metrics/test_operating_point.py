"""Operating-point P/R/F1: hand cases and a cross-check against pycocotools' evalImgs."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from services.benchmark.metrics.operating_point import Counts, match_counts
from services.benchmark.synthetic import synthetic_coco


def _xyxy(b):
    return [b[0], b[1], b[0] + b[2], b[1] + b[3]]


def test_hand_computed_duplicates_and_crowd():
    gts = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 90, 90]], float)
    crowd = np.array([False, False, True])
    dets = np.array(
        [
            [0, 0, 10, 10],  # TP (g0)
            [0, 0, 10, 10],  # duplicate of g0: FP
            [60, 60, 70, 70],  # inside the crowd region: |d ∩ g| / |d| = 1 → ignored
            [100, 100, 110, 110],  # FP
        ],
        float,
    )
    c = match_counts(dets, np.array([0.9, 0.8, 0.7, 0.6]), gts, crowd)
    assert c == Counts(tp=1, fp=2, n_gt=2)
    p, r, f = c.prf()
    assert (p, r) == (1 / 3, 1 / 2) and f == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_no_true_positive_gives_zero_f1_and_empty_sets_are_safe():
    assert Counts(0, 3, 2).prf() == (0.0, 0.0, 0.0)
    assert Counts(0, 0, 0).prf() == (0.0, 0.0, 0.0)
    empty = np.zeros((0, 4))
    assert match_counts(
        empty, np.zeros(0), np.array([[0, 0, 1, 1.0]]), np.array([False])
    ) == Counts(0, 0, 1)


@pytest.mark.parametrize("seed", [0, 4])
def test_matches_pycocotools_evaluateimg_at_iou_half_area_all(seed):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dt = synthetic_coco(20, dets_per_image=15, n_categories=5, crowd_rate=0.15, seed=seed)
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes([dict(d) for d in dt]), "bbox")
        ev.evaluate()
    ref = Counts(0, 0, 0)
    for e in ev.evalImgs:
        if e is None or e["aRng"] != [0, 1e10] or e["maxDet"] != 100:
            continue
        m, ig = e["dtMatches"][0], e["dtIgnore"][0]  # IoU threshold .50
        ref += Counts(
            int(((m > 0) & ~ig).sum()),
            int(((m == 0) & ~ig).sum()),
            int((~e["gtIgnore"].astype(bool)).sum()),
        )
    ours = Counts(0, 0, 0)
    for img in gt["images"]:
        for cat in gt["categories"]:
            g = [
                a
                for a in gt["annotations"]
                if a["image_id"] == img["id"] and a["category_id"] == cat["id"]
            ]
            d = [a for a in dt if a["image_id"] == img["id"] and a["category_id"] == cat["id"]]
            ours += match_counts(
                np.array([_xyxy(a["bbox"]) for a in d], float).reshape(-1, 4),
                np.array([a["score"] for a in d], float),
                np.array([_xyxy(a["bbox"]) for a in g], float).reshape(-1, 4),
                np.array([bool(a["iscrowd"]) for a in g]),
            )
    assert ours == ref
    assert ref.tp > 0 and ref.fp > 0
