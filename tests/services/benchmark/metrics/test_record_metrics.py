"""Metrics over run records: hand-computed cases and cross-checks against the COCO engine."""

from __future__ import annotations

import numpy as np
import pytest

from services.benchmark.metrics import compute_metrics
from services.benchmark.metrics.boxes import giou_terms
from services.benchmark.metrics.coco import records_to_coco
from services.benchmark.metrics.coco_engine import coco_evaluate
from services.benchmark.metrics.masks import mask_inter_union
from services.benchmark.records import EvalRecord, PredBox
from services.benchmark.synthetic import synthetic_coco
from services.common.registry import UnknownNameError
from services.reward.scoring.geometry import iou as box_iou


def rec(id, gt_boxes, preds, labels=None, **meta):
    sol = {"boxes": gt_boxes}
    if labels is not None:
        sol["labels"] = labels
    boxes = (
        None
        if preds is None
        else tuple(PredBox(tuple(p)) if not isinstance(p, PredBox) else p for p in preds)
    )
    return EvalRecord(id=id, completion="", solution=sol, boxes=boxes, meta=meta)


def by_name(values):
    return {m.name: m for m in values}


# ------------------------------------------------------------------ COCO over records


def test_coco_map_over_records_equals_engine_on_the_same_coco_set():
    """Synthetic COCO set → one record per image → coco_map must equal pycocotools directly."""
    gt, dt = synthetic_coco(12, dets_per_image=8, n_categories=4, crowd_rate=0.0, seed=7)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    records = []
    for img in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == img["id"]]
        dets = [d for d in dt if d["image_id"] == img["id"]]
        xyxy = lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])  # noqa: E731
        records.append(
            rec(
                f"img{img['id']:03d}",
                [list(xyxy(a["bbox"])) for a in anns],
                [PredBox(xyxy(d["bbox"]), names[d["category_id"]], d["score"]) for d in dets],
                labels=[names[a["category_id"]] for a in anns],
            )
        )
    ours = by_name(compute_metrics([{"name": "coco_map", "params": {"n_boot": 0}}], records))
    ref = coco_evaluate(gt, dt, engine="pycocotools").as_dict()
    for k, v in ref.items():
        assert ours[f"coco/{k}"].value == pytest.approx(v, abs=1e-9), k


def test_records_sharing_an_image_are_merged_and_asked_category_labels_predictions():
    # Visual-RFT style: one record per (image, category); predictions carry no label.
    r1 = rec("a", [[0, 0, 10, 10]], [[0, 0, 10, 10]], image_id="img1", category="cat")
    r2 = rec("b", [[20, 20, 40, 40]], [[0, 0, 10, 10]], image_id="img1", category="dog")
    cset = records_to_coco([r1, r2])
    assert cset.image_keys == ("img1",)
    assert cset.categories == ("cat", "dog")
    res = by_name(
        compute_metrics([{"name": "virft_fewshot_ap", "params": {"n_boot": 0}}], [r1, r2])
    )
    assert res["virft/AP/cat"].value == pytest.approx(1.0)
    assert res["virft/AP/dog"].value == 0.0
    assert res["virft/mAP"].value == pytest.approx(0.5)
    only_cat = compute_metrics(
        [{"name": "virft_fewshot_ap", "params": {"n_boot": 0, "classes": ["cat"]}}], [r1, r2]
    )
    assert by_name(only_cat)["virft/mAP"].value == pytest.approx(1.0)


def test_a_parse_failure_costs_recall_and_no_gt_class_costs_nothing():
    good = rec("a", [[0, 0, 10, 10]], [PredBox((0, 0, 10, 10), "cat")], labels=["cat"])
    failed = rec("b", [[0, 0, 10, 10]], None, labels=["cat"])
    halluc = rec("c", [], [PredBox((0, 0, 5, 5), "unicorn")])
    res = by_name(
        compute_metrics([{"name": "coco_map", "params": {"n_boot": 0}}], [good, failed, halluc])
    )
    assert res["coco/AR100"].value == pytest.approx(0.5)
    # precision 1 at the 51 recall points 0, .01, …, .50 and 0 at the other 50: AP = 51/101
    assert res["coco/AP"].value == pytest.approx(51 / 101)
    # operating point: the one TP, no FP (the unicorn class has no GT), 1 of 2 GT found
    assert (res["coco/P@0.5"].value, res["coco/R@0.5"].value) == (1.0, 0.5)
    assert res["coco/F1@0.5"].value == pytest.approx(2 / 3)


def test_virft_drops_exact_duplicate_boxes_before_scoring():
    # score-less: a wrong box, its exact duplicate, then the right box. With the duplicate the
    # TP comes third (precision 1/3 at recall 1); without it second (1/2).
    r = rec(
        "a", [[0, 0, 10, 10]], [[50, 50, 60, 60], [50, 50, 60, 60], [0, 0, 10, 10]], category="cat"
    )
    ref = [{"name": "virft_fewshot_ap", "params": {"n_boot": 0}}]
    assert by_name(compute_metrics(ref, [r]))["virft/mAP"].value == pytest.approx(0.5)
    ref[0]["params"]["dedupe_exact"] = False
    assert by_name(compute_metrics(ref, [r]))["virft/mAP"].value == pytest.approx(1 / 3)


def test_coco_map_bootstrap_interval_brackets_the_value():
    gt, dt = synthetic_coco(10, dets_per_image=5, n_categories=3, crowd_rate=0.0, seed=2)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    records = [
        rec(
            str(img["id"]),
            [
                [
                    a["bbox"][0],
                    a["bbox"][1],
                    a["bbox"][0] + a["bbox"][2],
                    a["bbox"][1] + a["bbox"][3],
                ]
                for a in gt["annotations"]
                if a["image_id"] == img["id"]
            ],
            [
                PredBox(
                    (
                        d["bbox"][0],
                        d["bbox"][1],
                        d["bbox"][0] + d["bbox"][2],
                        d["bbox"][1] + d["bbox"][3],
                    ),
                    names[d["category_id"]],
                    d["score"],
                )
                for d in dt
                if d["image_id"] == img["id"]
            ],
            labels=[
                names[a["category_id"]] for a in gt["annotations"] if a["image_id"] == img["id"]
            ],
        )
        for img in gt["images"]
    ]
    ap = by_name(compute_metrics(["coco_map"], records, n_boot=20))["coco/AP"]
    assert ap.ci_low is not None and ap.ci_low <= ap.value <= ap.ci_high
    assert ap.stderr > 0


# ------------------------------------------------------------------ RefCOCO


def test_refcoco_acc_counts_iou_exactly_half_as_a_hit_and_parse_failures_as_misses():
    g = [[0, 0, 10, 10]]
    records = [
        rec("half", g, [[0, 0, 10, 5]]),  # IoU 50/100 = 0.5 → hit (≥)
        rec("below", g, [[0, 0, 10, 4.9]]),  # IoU 0.49 → miss
        rec("exact", g, [[0, 0, 10, 10], [50, 50, 60, 60]]),  # first box counts → hit
        rec("fail", g, None),  # parse failure → miss
    ]
    res = by_name(compute_metrics(["refcoco_acc50"], records, n_boot=0))
    assert res["refcoco/acc@0.5"].value == pytest.approx(2 / 4)
    assert res["refcoco/mean_iou"].value == pytest.approx((0.5 + 0.49 + 1.0 + 0.0) / 4)
    assert res["refcoco/parse_fail_rate"].value == pytest.approx(0.25)
    assert res["refcoco/parse_fail_rate"].higher_is_better is False


def test_box_iou_against_brute_force_pixel_count():
    rng = np.random.default_rng(0)
    for _ in range(30):
        a = np.sort(rng.integers(0, 20, size=(2, 2)), axis=0).T.reshape(-1)[[0, 2, 1, 3]]
        b = np.sort(rng.integers(0, 20, size=(2, 2)), axis=0).T.reshape(-1)[[0, 2, 1, 3]]
        ga = np.zeros((20, 20), bool)
        gb = np.zeros((20, 20), bool)
        ga[a[1] : a[3], a[0] : a[2]] = True
        gb[b[1] : b[3], b[0] : b[2]] = True
        u = (ga | gb).sum()
        expected = (ga & gb).sum() / u if u else 0.0
        assert box_iou(a.tolist(), b.tolist()) == pytest.approx(expected)


# ------------------------------------------------------------------ LISA


def test_lisa_box_giou_ciou_hand_computed():
    records = [
        rec("a", [[0, 0, 10, 10]], [[0, 0, 10, 5]]),  # I 50, U 100
        rec("b", [[0, 0, 100, 100]], [[0, 0, 100, 100]]),  # I 10000, U 10000
        rec("c", [[0, 0, 10, 10]], None),  # miss: I 0, U 100
        rec("d", [], []),  # empty GT, empty prediction: counts 1.0 in gIoU
    ]
    res = by_name(compute_metrics(["lisa_giou_ciou"], records, n_boot=0))
    g = (50 / (100 + 1e-5) + 10000 / (10000 + 1e-5) + 0.0 + 1.0) / 4
    assert res["lisa/box_giou"].value == pytest.approx(g, rel=1e-12)
    assert res["lisa/box_ciou"].value == pytest.approx(10050 / (10200 + 1e-10), rel=1e-12)
    assert "lisa/mask_giou" not in res


def test_mask_inter_union_excludes_ignore_pixels():
    gt = np.array([[1, 1, 0], [255, 255, 0], [0, 0, 0]], dtype=np.uint8)
    pred = np.array([[1, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)
    # valid pixels: all but the two 255s. I = {(0,0)} = 1; U = {(0,0),(0,1),(1,2)} = 3
    assert mask_inter_union(pred, gt) == (1.0, 3.0)


def test_lisa_mask_metrics_from_rle_and_arrays():
    from pycocotools import mask as mask_utils

    gt = np.zeros((8, 8), np.uint8)
    gt[0:4, 0:4] = 1
    pred = np.zeros((8, 8), np.uint8)
    pred[0:4, 0:2] = 1
    rle = mask_utils.encode(np.asfortranarray(pred))
    rle["counts"] = rle["counts"].decode()
    records = [
        rec("a", [[0, 0, 4, 4]], [[0, 0, 2, 4]], gt_mask=gt.tolist(), pred_mask=rle),
        rec("b", [[0, 0, 4, 4]], [[0, 0, 4, 4]], gt_mask=gt, pred_mask=gt.astype(bool)),
    ]
    res = by_name(compute_metrics(["lisa_giou_ciou"], records, n_boot=0))
    assert res["lisa/mask_giou"].value == pytest.approx((8 / (16 + 1e-5) + 16 / (16 + 1e-5)) / 2)
    assert res["lisa/mask_ciou"].value == pytest.approx(24 / 32)


def test_giou_terms_empty_union_is_one():
    np.testing.assert_allclose(
        giou_terms(np.array([0.0, 5.0]), np.array([0.0, 10.0])), [1.0, 5 / (10 + 1e-5)]
    )


# ------------------------------------------------------------------ component metrics


def test_accuracy_and_dig_average_reward_components():
    recs = [
        EvalRecord("a", "", {}, components={"accuracy": 1.0, "f1": 0.5, "miou": 0.4}),
        EvalRecord("b", "", {}, components={"accuracy": 0.0, "f1": 1.0, "miou": 0.8}),
        EvalRecord("c", "", {}, components={}),  # did not parse: counts 0
    ]
    res = by_name(compute_metrics(["accuracy", "dig_f1_miou"], recs, n_boot=0))
    assert res["accuracy"].value == pytest.approx(1 / 3)
    assert res["dig/f1"].value == pytest.approx(0.5)
    assert res["dig/miou"].value == pytest.approx(0.4)


def test_missing_component_everywhere_is_an_error_not_a_zero():
    with pytest.raises(ValueError, match="accuracy"):
        compute_metrics(["accuracy"], [EvalRecord("a", "", {}, components={"f1": 1.0})])


def test_unknown_metric_suggests_close_name():
    with pytest.raises(UnknownNameError, match="coco_map"):
        compute_metrics(["coco_mAP"], [])
