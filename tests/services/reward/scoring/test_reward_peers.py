"""The peer presets on hand-computed cases written in each peer's own answer format, and
VLM-R1's AP against pycocotools run the way VLM-R1 runs it."""

from __future__ import annotations

import contextlib
import io
import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.reward import Sample
from services.reward.scoring import score_samples


def sample(completion: str, solution: dict, frame: dict | None = None) -> Sample:
    body = {"id": "s", "completion": completion, "solution": solution}
    if frame is not None:
        body["frame"] = frame
    return Sample.model_validate(body)


def one(preset: str, completion: str, solution: dict, frame: dict | None = None):
    (r,) = score_samples([sample(completion, solution, frame)], preset)
    return r


# ---- Perception-R1 ---------------------------------------------------------------------------

SQUARE = {"coords": "norm1000", "image_size": [1000, 1000]}


def test_pr1_grounding_is_iou_squared_plus_the_intended_format():
    c = (
        "<|object_ref_start|>the dog<|object_ref_end|><|box_start|>(100,200),(300,400)"
        "<|box_end|><|im_end|>"
    )
    r = one("pr1_grounding", c, {"boxes": [[100, 200, 300, 500]]}, SQUARE)
    # IoU = 200·200 / (200·300) = 2/3 → IoU² = 4/9
    assert r.components == pytest.approx({"iou": 4 / 9, "qwen_box_format": 1.0})
    assert r.reward == pytest.approx(1 + 4 / 9)


def test_pr1_plain_pairs_are_read_in_the_frame_not_times_1000():
    r = one("pr1_grounding", "(100,200),(300,400)", {"boxes": [[100, 200, 300, 500]]}, SQUARE)
    assert r.components == pytest.approx({"iou": 4 / 9, "qwen_box_format": 0.0})


def test_pr1_text_without_a_box_scores_zero_not_format_one():
    r = one("pr1_grounding", "<think>anything</think>", {"boxes": [[1, 1, 5, 5]]}, SQUARE)
    assert r.reward == 0.0 and r.error.code == "no_boxes"


# ---- VisionReasoner --------------------------------------------------------------------------

VR_FRAME = {"coords": "input", "image_size": [840, 840], "input_size": [840, 840]}
VR_GT = {"boxes": [[10, 10, 110, 110], [200, 200, 300, 300]], "points": [[60, 60], [250, 250]]}


def vr(items: list[dict], think: str = "I look at it") -> str:
    return f"<think>{think}</think>\n<answer>{json.dumps(items)}</answer>"


def test_vision_reasoner_one_of_two_objects():
    c = vr([{"bbox_2d": [10, 10, 110, 110], "point_2d": [60, 60]}])
    r = one("vision_reasoner", c, VR_GT, VR_FRAME)
    # accuracy: 3 criteria on the matched pair / max(1, 2) = 1.5; format 1 + (1 + 1)
    assert r.components == pytest.approx({"vr_format": 3.0, "vr_accuracy": 1.5, "non_repeat": 1.0})
    assert r.reward == pytest.approx(5.5)


@pytest.mark.parametrize(
    "dx, expected",
    [
        (12, 3.0),  # IoU(+1) 8989/11413 > 0.5, mean |Δ| 6 < 10, point 12 px inside its box
        (20, 2.0),  # mean |Δ| = 10 exactly: not < 10
        (30, 1.0),  # IoU 0.53 > 0.5 only: mean |Δ| 15, point distance 30 = not < 30
    ],
)
def test_vision_reasoner_binary_criteria_at_their_boundaries(dx, expected):
    c = vr([{"bbox_2d": [10 + dx, 10, 110 + dx, 110], "point_2d": [60 + dx, 60]}])
    r = one("vision_reasoner", c, {"boxes": [[10, 10, 110, 110]], "points": [[60, 60]]}, VR_FRAME)
    assert r.components["vr_accuracy"] == pytest.approx(expected)


def test_vision_reasoner_missing_point_and_repeats():
    c = vr(
        [
            {"bbox_2d": [10, 10, 110, 110]},
            {"bbox_2d": [200, 200, 300, 300], "point_2d": [250, 250]},
        ],
        think="Look. It is here. It is here. It is here.",
    )
    r = one("vision_reasoner", c, VR_GT, VR_FRAME)
    # pair 1: IoU + L1 (no point) = 2; pair 2: 3 → 5 / 2; format 1 + (2 + 1) / 2; 2 repeats
    assert r.components == pytest.approx({"vr_format": 2.5, "vr_accuracy": 2.5, "non_repeat": 0.0})


def test_vision_reasoner_thresholds_are_in_input_pixels():
    # original image 1680×1680, input 840×840: 10 input px = 20 original px
    frame = {"coords": "input", "image_size": [1680, 1680], "input_size": [840, 840]}
    gt = {"boxes": [[20, 20, 220, 220]], "points": [[120, 120]]}  # = [10,10,110,110] in input
    c = vr([{"bbox_2d": [22, 10, 122, 110], "point_2d": [72, 60]}])
    assert one("vision_reasoner", c, gt, frame).components["vr_accuracy"] == pytest.approx(3.0)


# ---- VLM-R1 detection ------------------------------------------------------------------------

VLM_FRAME = {"coords": "input", "image_size": [1280, 960], "input_size": [640, 480]}


def od(items: list[dict]) -> str:
    return f"<think>t</think><answer>```json\n{json.dumps(items)}\n```</answer>"


def test_vlmr1_fp_after_tp_costs_no_ap_but_the_length_factor_halves_it():
    gt = {"boxes": [[100, 100, 200, 200]], "labels": ["cat"]}
    good = {"bbox_2d": [50, 50, 100, 100], "label": "cat"}  # input px → [100,100,200,200]
    fp = {"bbox_2d": [300, 300, 350, 350], "label": "cat"}
    r = one("vlmr1_detection", od([good, fp]), gt, VLM_FRAME)
    assert r.components == pytest.approx({"od_ap": 1.0, "format": 1.0}, abs=1e-12)
    r = one("vlmr1_detection_length", od([good, fp]), gt, VLM_FRAME)
    assert r.components["od_ap"] == pytest.approx(0.5)
    # the FP listed first: precision 1/2 at recall 1 → AP 0.5
    r = one("vlmr1_detection", od([fp, good]), gt, VLM_FRAME)
    assert r.components["od_ap"] == pytest.approx(0.5)
    # an unknown label is dropped, not a false positive
    other = {"bbox_2d": [300, 300, 350, 350], "label": "dog"}
    r = one("vlmr1_detection", od([other, good]), gt, VLM_FRAME)
    assert r.components["od_ap"] == pytest.approx(1.0, abs=1e-12)


def test_vlmr1_no_objects_must_be_said_as_an_empty_list():
    gt = {"boxes": [], "labels": []}
    assert one("vlmr1_detection", od([]), gt, VLM_FRAME).components["od_ap"] == 1.0
    r = one("vlmr1_detection", "<think>t</think><answer>There are none.</answer>", gt, VLM_FRAME)
    assert r.reward == 0.0 and r.error is not None  # VLM-R1 gives this 1.0


def test_vlmr1_weighted_sum_hand_cases():
    gt = {"boxes": [[100, 100, 200, 200]], "labels": ["cat"]}
    good = {"bbox_2d": [50, 50, 100, 100], "label": "cat"}
    wrong = {"bbox_2d": [50, 50, 100, 100], "label": "dog"}
    fp = {"bbox_2d": [300, 300, 350, 350], "label": "cat"}
    ws = "vlmr1_detection_weighted_sum"
    assert one(ws, od([wrong]), gt, VLM_FRAME).components["weighted_sum"] == pytest.approx(0.3)
    assert one(ws, od([good, fp]), gt, VLM_FRAME).components["weighted_sum"] == pytest.approx(0.925)
    unlabeled = {"bbox_2d": [50, 50, 100, 100]}
    r = one(ws, od([unlabeled, good]), gt, VLM_FRAME)
    # the first pair in row-major order of equal IoU takes the GT: the unlabeled prediction →
    # a mismatch (VLM-R1 crashes here); completeness 1 − (0 + 1/2)/2 = 0.75
    assert r.error is None and r.components["weighted_sum"] == pytest.approx(0.3 * 0.75)


def coco_reference(pred: list[dict], gt: list[dict], stat: int) -> float:
    """VLM-R1's calculate_map, written out: pycocotools on one 2048×2048 image."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats = list(dict.fromkeys(g["label"] for g in gt))
    ids = {c: k for k, c in enumerate(cats)}

    def xywh(b):
        return [b[0], b[1], b[2] - b[0], b[3] - b[1]]

    gt_json = {
        "images": [{"id": 0, "width": 2048, "height": 2048}],
        "categories": [{"id": ids[c], "name": c} for c in cats],
        "annotations": [
            {
                "id": k + 1,
                "image_id": 0,
                "category_id": ids[g["label"]],
                "bbox": xywh(g["bbox_2d"]),
                "area": xywh(g["bbox_2d"])[2] * xywh(g["bbox_2d"])[3],
                "iscrowd": 0,
            }
            for k, g in enumerate(gt)
        ],
    }
    dt = [
        {"image_id": 0, "category_id": ids[p["label"]], "bbox": xywh(p["bbox_2d"]), "score": 1.0}
        for p in pred
        if p["label"] in ids
    ]
    if not dt:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt_json
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dt), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[stat])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**6))
def test_od_ap_matches_pycocotools_on_random_answers(seed):
    rng = random.Random(seed)

    def box():
        x, y = rng.uniform(0, 1500), rng.uniform(0, 1500)
        return [
            round(x, 1),
            round(y, 1),
            round(x + rng.uniform(5, 400), 1),
            round(y + rng.uniform(5, 400), 1),
        ]

    gt = [{"bbox_2d": box(), "label": rng.choice("ab")} for _ in range(rng.randint(1, 6))]
    pred = []
    for g in gt:
        if rng.random() < 0.8:
            jitter = [max(0.0, round(v + rng.uniform(-30, 30), 1)) for v in g["bbox_2d"]]
            label = g["label"] if rng.random() < 0.85 else rng.choice("abc")
            pred.append({"bbox_2d": jitter, "label": label})  # inside the image: no clipping
    pred += [{"bbox_2d": box(), "label": rng.choice("abc")} for _ in range(rng.randint(0, 3))]
    rng.shuffle(pred)
    pred = [
        p for p in pred if p["bbox_2d"][2] > p["bbox_2d"][0] and p["bbox_2d"][3] > p["bbox_2d"][1]
    ]
    if not pred:
        return
    sol = {"boxes": [g["bbox_2d"] for g in gt], "labels": [g["label"] for g in gt]}
    frame = {"coords": "pixel", "image_size": [2048, 2048]}
    for preset, stat in (("vlmr1_detection", 0), ("vlmr1_detection_ap50", 1)):
        got = one(preset, od(pred), sol, frame).components["od_ap"]
        assert got == pytest.approx(max(0.0, coco_reference(pred, gt, stat)), abs=1e-9)


# ---- R1-V ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, accuracy",
    [("3", 1.0), (" 3 ", 1.0), ("3.0", 1.0), ("three", 0.0), ("3 apples", 0.0), ("", 0.0)],
)
def test_r1v_accuracy(answer, accuracy):
    r = one("r1v_accuracy", f"<think>count</think><answer>{answer}</answer>", {"label": "3"})
    assert r.components.get("exact_answer", 0.0) == accuracy
    assert r.reward == pytest.approx(accuracy + (1.0 if answer.strip() else 0.0))


def test_every_preset_documents_reproduces_and_deviations():
    from services.reward.scoring import presets

    for name in ("pr1_grounding", "vision_reasoner", "vlmr1_detection", "r1v_accuracy"):
        p = presets.get(name)
        assert p.reproduces and p.deviations
    assert np.all(
        [
            presets.get(n).deviations
            for n in presets.names()
            if not n.startswith("deva") and n != "dig"
        ]
    )


def test_od_ap_equal_iou_tie_takes_the_last_gt_as_cocoeval():
    """P overlaps G1 and G2 equally (IoU 0.6); COCOeval gives P the last one, G2, so Q (only
    near G1) still matches: AP50 = 1. Taking G1 would leave Q unmatched (AP50 ≈ 0.505)."""
    gt = [
        {"bbox_2d": [75, 0, 175, 100], "label": "x"},
        {"bbox_2d": [125, 0, 225, 100], "label": "x"},
    ]
    pred = [
        {"bbox_2d": [100, 0, 200, 100], "label": "x"},
        {"bbox_2d": [50, 0, 150, 100], "label": "x"},
    ]
    sol = {"boxes": [g["bbox_2d"] for g in gt], "labels": ["x", "x"]}
    frame = {"coords": "pixel", "image_size": [2048, 2048]}
    got = one("vlmr1_detection_ap50", od(pred), sol, frame).components["od_ap"]
    assert got == pytest.approx(1.0) == coco_reference(pred, gt, 1)
    got = one("vlmr1_detection", od(pred), sol, frame).components["od_ap"]
    assert got == pytest.approx(0.3) == pytest.approx(coco_reference(pred, gt, 0))
