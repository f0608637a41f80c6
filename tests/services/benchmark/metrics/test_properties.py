"""Hypothesis properties of the metrics (invariances and bounds that must always hold)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.benchmark.metrics import compute_metrics
from services.benchmark.metrics.coco_engine import coco_evaluate
from services.benchmark.records import EvalRecord, PredBox
from services.reward.scoring.geometry import iou as box_iou

coord = st.integers(0, 60)


@st.composite
def boxes(draw):  # type: ignore[no-untyped-def]
    x1, y1 = draw(coord), draw(coord)
    return (
        float(x1),
        float(y1),
        float(x1 + draw(st.integers(1, 40))),
        float(y1 + draw(st.integers(1, 40))),
    )


@settings(max_examples=60, deadline=None)
@given(boxes(), boxes())
def test_box_iou_symmetric_bounded_and_one_on_itself(a, b):
    assert box_iou(a, b) == pytest.approx(box_iou(b, a))
    assert 0.0 <= box_iou(a, b) <= 1.0
    assert box_iou(a, a) == 1.0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(boxes(), boxes()), min_size=1, max_size=8), st.floats(0.05, 0.95))
def test_refcoco_accuracy_falls_as_the_threshold_rises(pairs, t):
    recs = [
        EvalRecord(str(i), "", {"boxes": [list(g)]}, boxes=(PredBox(p),))
        for i, (p, g) in enumerate(pairs)
    ]
    res = {
        m.name: m.value
        for m in compute_metrics(
            [{"name": "refcoco_acc50", "params": {"thresholds": [t, min(t + 0.04, 1.0)]}}],
            recs,
            n_boot=0,
        )
    }
    lo, hi = res[f"refcoco/acc@{t:g}"], res[f"refcoco/acc@{min(t + 0.04, 1.0):g}"]
    assert 0.0 <= hi <= lo <= 1.0


@settings(max_examples=15, deadline=None)
@given(st.lists(boxes(), min_size=1, max_size=6, unique=True), st.randoms(use_true_random=False))
def test_perfect_predictions_give_ap_one_in_any_order(gt_boxes, rnd):
    gt = {
        "images": [{"id": 1}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                "area": (b[2] - b[0]) * (b[3] - b[1]),
                "iscrowd": 0,
            }
            for i, b in enumerate(gt_boxes)
        ],
    }
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": a["bbox"], "score": 1.0}
        for a in gt["annotations"]
    ]
    rnd.shuffle(dets)
    stats = coco_evaluate(gt, dets, engine="faster").stats
    # each detection equals exactly one GT (IoU 1, the highest it can have), whatever the order
    assert stats[0] == pytest.approx(1.0) and stats[8] == pytest.approx(1.0)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.tuples(boxes(), st.floats(0.01, 1.0)), min_size=1, max_size=8),
    st.randoms(use_true_random=False),
)
def test_ap_does_not_depend_on_detection_order_when_scores_differ(dets_scores, rnd):
    scores = np.linspace(0.1, 0.9, len(dets_scores))  # distinct scores
    gt = {
        "images": [{"id": 1}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [10, 10, 20, 20],
                "area": 400.0,
                "iscrowd": 0,
            }
        ],
    }
    dets = [
        {
            "image_id": 1,
            "category_id": 1,
            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
            "score": float(s),
        }
        for (b, _), s in zip(dets_scores, scores, strict=True)
    ]
    before = coco_evaluate(gt, dets, engine="faster").stats
    rnd.shuffle(dets)
    assert coco_evaluate(gt, dets, engine="faster").stats == before


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=10))
def test_lisa_giou_and_ciou_are_in_unit_interval(iu):
    recs = []
    for i, (inter, extra) in enumerate(iu):
        # a 1-pixel-high prediction/GT pair with |I| = inter and |U| = inter + extra
        g = (0.0, 0.0, float(inter + extra), 1.0) if inter + extra else None
        p = (0.0, 0.0, float(inter), 1.0) if inter else None
        recs.append(
            EvalRecord(
                str(i), "", {"boxes": [list(g)] if g else []}, boxes=(PredBox(p),) if p else ()
            )
        )
    res = {m.name: m.value for m in compute_metrics(["lisa_giou_ciou"], recs, n_boot=0)}
    assert 0.0 <= res["lisa/box_giou"] <= 1.0 and 0.0 <= res["lisa/box_ciou"] <= 1.0
