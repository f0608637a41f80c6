"""COCO engine: parity with pycocotools on random synthetic sets, and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from services.benchmark.metrics.coco_engine import (
    STAT_NAMES,
    _run_pycocotools,
    coco_evaluate,
    detections_dataset,
)
from services.benchmark.synthetic import synthetic_coco


@pytest.mark.parametrize(
    ("seed", "n_images", "dets", "constant"),
    [(0, 30, 20, False), (1, 20, 5, False), (2, 25, 10, True), (3, 12, 100, False)],
)
def test_faster_engine_matches_pycocotools_on_all_12_stats(seed, n_images, dets, constant):
    gt, dt = synthetic_coco(
        n_images,
        dets_per_image=dets,
        n_categories=12,
        crowd_rate=0.05,
        constant_score=constant,
        seed=seed,
    )
    ours = coco_evaluate(gt, dt, engine="faster")
    ref = coco_evaluate(gt, dt, engine="pycocotools")
    assert len(ours.stats) == 12 == len(STAT_NAMES)
    assert np.max(np.abs(np.array(ours.stats) - np.array(ref.stats))) <= 1e-9
    assert ours.precision.shape == ref.precision.shape == (10, 101, 12, 4, 3)
    assert np.max(np.abs(ours.precision - ref.precision)) <= 1e-9
    assert 0.0 < ours.stats[0] < 1.0  # a non-trivial set


def test_reference_path_equals_plain_pycocotools_loadres():
    """Our pycocotools path builds the result set itself; it must equal pycocotools' loadRes."""
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dt = synthetic_coco(15, dets_per_image=10, n_categories=6, seed=5)
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = copy.deepcopy(gt)
        cg.createIndex()
        cd = cg.loadRes(copy.deepcopy(dt))
        ev = COCOeval(cg, cd, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = coco_evaluate(gt, dt, engine="pycocotools")
    np.testing.assert_allclose(ours.stats, ev.stats[:12], rtol=0, atol=1e-12)


def test_inputs_are_not_mutated():
    gt, dt = synthetic_coco(5, dets_per_image=4, n_categories=3, seed=1)
    import copy

    gt0, dt0 = copy.deepcopy(gt), copy.deepcopy(dt)
    coco_evaluate(gt, dt, engine="faster")
    coco_evaluate(gt, dt, engine="pycocotools")
    assert gt == gt0 and dt == dt0


def _one_image(gt_boxes, det_boxes, scores=None, area=None):
    anns = [
        {
            "id": i + 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": b,
            "area": area if area is not None else b[2] * b[3],
            "iscrowd": 0,
        }
        for i, b in enumerate(gt_boxes)
    ]
    gt = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}], "annotations": anns}
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": b, "score": 1.0 if scores is None else scores[i]}
        for i, b in enumerate(det_boxes)
    ]
    return gt, dets


@pytest.mark.parametrize("engine", ["faster", "pycocotools"])
def test_hand_computed_single_box_iou_062(engine):
    # GT 10×10 (area 100: small), detection 10×6.2 inside it: IoU = 62/100 = 0.62, which is a
    # match at thresholds .50, .55, .60 and a miss at .65….95: AP = AR = 3/10.
    gt, dets = _one_image([[0, 0, 10, 10]], [[0, 0, 10, 6.2]])
    s = coco_evaluate(gt, dets, engine=engine).as_dict()
    assert s["AP"] == pytest.approx(0.3, abs=1e-12)
    assert s["AP50"] == pytest.approx(1.0, abs=1e-12) and s["AP75"] == 0.0
    assert s["APs"] == pytest.approx(0.3) and s["APm"] == -1.0 and s["APl"] == -1.0
    assert s["AR1"] == s["AR10"] == s["AR100"] == pytest.approx(0.3)


@pytest.mark.parametrize("engine", ["faster", "pycocotools"])
def test_hand_computed_false_positive_ranked_first_halves_precision(engine):
    # Two GT (large), detections: a FP with score .9, then the two exact TPs (.8, .7).
    # PR points: (r=0, p=0), (r=.5, p=.5), (r=1, p=2/3); the right-to-left running max makes
    # precision 2/3 at every recall point in [0, 1] → AP = 2/3 at every IoU threshold.
    g = [[0, 0, 100, 100], [200, 200, 100, 100]]
    d = [[400, 400, 50, 50], [0, 0, 100, 100], [200, 200, 100, 100]]
    gt, dets = _one_image(g, d, scores=[0.9, 0.8, 0.7])
    s = coco_evaluate(gt, dets, engine=engine).as_dict()
    assert s["AP"] == pytest.approx(2 / 3, abs=1e-12)
    assert s["AR1"] == 0.0  # the top-1 detection is the false positive
    assert s["AR100"] == 1.0


def test_empty_detections_give_zero_where_gt_exists_like_pycocotools():
    gt, _ = synthetic_coco(8, dets_per_image=1, n_categories=5, seed=3)
    ours = coco_evaluate(gt, [], engine="faster")
    ref_stats, ref_prec, _ = _run_pycocotools(gt, detections_dataset(gt, []))
    np.testing.assert_array_equal(np.array(ours.stats), ref_stats)
    np.testing.assert_array_equal(ours.precision, ref_prec)
    assert ours.stats[0] == 0.0


def test_unknown_engine_is_rejected():
    gt, dets = _one_image([[0, 0, 10, 10]], [[0, 0, 10, 10]])
    with pytest.raises(ValueError, match="unknown COCO engine"):
        coco_evaluate(gt, dets, engine="nope")  # type: ignore[arg-type]
