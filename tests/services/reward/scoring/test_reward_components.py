"""Hand-computed values for every component, and the peers' degenerate cases (empty class
answer, GT empty vs a text answer, several boxes in a LISA answer, false positives after true
positives, a low-confidence false positive, duplicates; docs/rewards.md)."""

import json

import pytest

from schemas.geometry import Frame
from schemas.reward import BoxSolution, ComponentRef, LabelSolution, RewardSpec, Sample
from services.reward.scoring import score_samples


def wrap(answer: str, think: str = "t") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


def spec(*names, method="sum", **params):
    return RewardSpec(
        components=[ComponentRef(name=n, params=params.get(n, {})) for n in names],
        aggregate={"method": method},
    )


def score(completion, solution, *names, frame=None, **params):
    s = Sample(id="x", completion=completion, solution=solution, frame=frame or Frame())
    return score_samples([s], spec(*names, **params))[0]


def boxes(*bs):
    return BoxSolution(boxes=list(bs))


def virft(*items):
    return wrap(json.dumps([{"Position": b, "Confidence": c} for b, c in items]))


# ---------------------------------------------------------------- format
@pytest.mark.parametrize(
    "completion, expected",
    [
        (wrap("[1, 2, 3, 4]"), 1.0),
        ("  <think>a\nb</think>\n\n<answer>[1, 2, 3, 4]</answer>\n", 1.0),
        ("<answer>[1, 2, 3, 4]</answer>", 0.0),  # no think block
        (wrap("[1, 2, 3, 4]") + " trailing", 0.0),
        ("before " + wrap("[1, 2, 3, 4]"), 0.0),
        ("<think>a</think>x<answer>[1, 2, 3, 4]</answer>", 0.0),
        ("<think>a</think><answer>[1,2,3,4]</answer><answer>[1,2,3,4]</answer>", 0.0),
        (wrap("[4, 2, 3, 4]"), 0.0),  # inverted box: parses, but not a valid answer
        (wrap("[1, 2, 3"), 0.0),  # does not parse
    ],
)
def test_format(completion, expected):
    assert score(completion, boxes([1, 2, 3, 4]), "format").components["format"] == expected


def test_format_for_classification():
    sol = LabelSolution(label="cat")
    assert score(wrap("dog"), sol, "format").components["format"] == 1.0
    assert score(wrap(""), sol, "format").components["format"] == 0.0


# ---------------------------------------------------------------- iou / giou
def test_iou_giou_by_hand():
    gt = boxes([0, 0, 2, 2])
    r = score(wrap("[1, 1, 3, 3]"), gt, "iou", "giou")
    assert r.components["iou"] == pytest.approx(1 / 7)
    assert r.components["giou"] == pytest.approx(1 / 7 - 2 / 9)
    r = score(wrap("[0, 0, 2, 2]"), gt, "giou", giou={"offset": 1.0})
    assert r.components["giou"] == pytest.approx(2.0)


def test_several_boxes_in_a_lisa_answer_use_the_first_box_only():
    # Visual-RFT pairs box 1's top-left with box 2's top-left here (reward 1.2); we use box 1.
    frame = Frame(coords="norm1000", image_size=(1000, 1000))
    answer = wrap("(100,100),(200,200),(300,300),(400,400)")
    r = score(answer, boxes([100, 100, 200, 200]), "giou", frame=frame, giou={"offset": 1.0})
    assert r.components["giou"] == pytest.approx(2.0)
    assert r.error is None


def test_norm1000_frame_is_applied():
    frame = Frame(coords="norm1000", image_size=(640, 480))
    r = score(wrap("[0, 0, 500, 500]"), boxes([0, 0, 320, 240]), "iou", frame=frame)
    assert r.components["iou"] == pytest.approx(1.0)


def test_pixels_under_norm1000_are_bad_frame_not_guessed():
    frame = Frame(coords="norm1000", image_size=(640, 480))
    r = score(wrap("[0, 0, 3200, 2400]"), boxes([0, 0, 320, 240]), "iou", frame=frame)
    assert r.reward == 0.0 and r.error.code == "bad_frame"


def test_inverted_prediction_is_a_zero_area_false_positive():
    gt = boxes([0, 0, 10, 10])
    r = score(wrap("[10, 10, 0, 0]"), gt, "iou", "f1", "format")
    assert r.components == {"iou": 0.0, "f1": 0.0, "format": 0.0}
    r = score(wrap("[[0, 0, 10, 10], [10, 10, 0, 0]]"), gt, "f1")
    assert r.components["f1"] == pytest.approx(2 / 3)  # TP 1, N 2, M 1


# ---------------------------------------------------------------- f1 / miou
def test_f1_miou_by_hand_and_labels():
    gt = BoxSolution(boxes=[[0, 0, 10, 10], [50, 50, 60, 60]], labels=["cat", "dog"])
    items = [
        {"bbox_2d": [0, 0, 10, 10], "label": "cat"},
        {"bbox_2d": [50, 50, 60, 60], "label": "Cat"},
    ]
    r = score(wrap(json.dumps(items)), gt, "f1", "miou")
    assert r.components == {"f1": pytest.approx(0.5), "miou": pytest.approx(0.5)}
    r = score(wrap(json.dumps(items)), gt, "f1", f1={"labels": "ignore"})
    assert r.components["f1"] == 1.0


def test_false_positives_after_true_positives_are_penalised():
    # VLM-R1's mAP gives 1.0 here (FPs listed after TPs do not lower AP); F1 = 2/3.
    r = score(wrap("[[0, 0, 10, 10], [50, 50, 60, 60]]"), boxes([0, 0, 10, 10]), "f1", "miou")
    assert r.components["f1"] == pytest.approx(2 / 3)
    assert r.components["miou"] == pytest.approx(1 / 2)


def test_empty_gt_versus_text_and_empty_list():
    # VLM-R1 gives 1.0 to any text when GT is empty; here text is no_boxes → 0, "[]" → 1.
    r = score(wrap("There are no such objects."), boxes(), "f1", "miou", "format")
    assert r.reward == 0.0 and r.error.code == "no_boxes"
    r = score(wrap("[]"), boxes(), "f1", "miou", "format")
    assert r.reward == 3.0 and r.error is None
    r = score(wrap("[[0, 0, 1, 1]]"), boxes(), "f1", "miou")
    assert r.reward == 0.0
    r = score(wrap("[]"), boxes([0, 0, 1, 1]), "f1", "miou")
    assert r.reward == 0.0


# ---------------------------------------------------------------- accuracy
@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Boeing 737-800", 1.0),
        ("boeing_737_800", 1.0),
        ("BOEING737800", 1.0),
        ("737", 0.0),  # Visual-RFT's substring test gives 1
        ("Boeing 737-800 jet", 0.0),
        ("B738", 1.0),  # synonym
    ],
)
def test_accuracy(answer, expected):
    sol = LabelSolution(label="Boeing 737-800", synonyms=["B738"])
    assert score(wrap(answer), sol, "accuracy").components["accuracy"] == expected


def test_empty_classification_answer_never_matches():
    # Visual-RFT gives 1.0 ("" is a substring of every label).
    r = score(wrap(""), LabelSolution(label="cat"), "accuracy", "format")
    assert r.reward == 0.0 and r.error.code == "empty_answer"
    r = score("<think>it is a cat</think>", LabelSolution(label="cat"), "accuracy")
    assert r.reward == 0.0 and r.error.code == "no_answer"  # thinking is never searched


# ---------------------------------------------------------------- virft_*
A, B = [0, 0, 100, 100], [200, 200, 300, 300]


def test_virft_documented_example():
    # GT {A, B}; predictions A (exact, 0.9) and a false positive (0.3) → IoU 0.5, conf 0.8.
    r = score(
        virft((A, 0.9), ([500, 500, 600, 600], 0.3)), boxes(A, B), "virft_iou", "virft_confidence"
    )
    assert r.components["virft_iou"] == pytest.approx(0.5)
    assert r.components["virft_confidence"] == pytest.approx(0.8)


def test_low_confidence_false_positive_gets_high_confidence_reward():
    # IoU 0.14 < 0.5 → unmatched, conf 0.2 → 1 − 0.2 = 0.8 (kept for parity).
    r = score(virft(([0, 0, 100, 14], 0.2)), boxes(A), "virft_iou", "virft_confidence")
    assert r.components["virft_iou"] == 0.0
    assert r.components["virft_confidence"] == pytest.approx(0.8)


def test_virft_exact_duplicates_removed_near_duplicates_not():
    r = score(virft((A, 0.9), (A, 0.8)), boxes(A), "virft_iou", "virft_confidence")
    assert r.components["virft_iou"] == pytest.approx(1.0)
    assert r.components["virft_confidence"] == pytest.approx(0.9)
    r = score(virft((A, 0.9), ([1, 0, 100, 100], 0.8)), boxes(A), "virft_iou")
    assert r.components["virft_iou"] == pytest.approx(0.5)


def test_virft_iou_threshold_is_strict_and_greedy_by_confidence():
    half = [0, 0, 100, 50]  # IoU exactly 0.5 with A: not matched (strict >)
    r = score(virft((half, 0.9)), boxes(A), "virft_iou")
    assert r.components["virft_iou"] == 0.0
    # the higher-confidence prediction takes A first even though it overlaps less
    p1, p2 = [0, 0, 100, 80], [0, 0, 100, 100]
    r = score(virft((p1, 0.9), (p2, 0.5)), boxes(A), "virft_iou", "virft_confidence")
    assert r.components["virft_iou"] == pytest.approx(0.8 / 2)
    assert r.components["virft_confidence"] == pytest.approx((0.9 + 0.5) / 2)


def test_math_verify_shortcut_is_absent():
    # Visual-RFT returns 1.0 when the first box's y1 equals the GT's first y1.
    r = score(virft(([900, 0, 950, 40], 0.9)), boxes(A), "virft_iou")
    assert r.components["virft_iou"] == 0.0


def test_virft_missing_confidence_scores_zero():
    r = score(wrap('[{"Position": [0, 0, 100, 100]}]'), boxes(A), "virft_iou", "virft_confidence")
    assert r.components == {"virft_iou": 0.0, "virft_confidence": 0.0}


# ---------------------------------------------------------------- bad numbers / truncation
@pytest.mark.parametrize(
    "answer, code",
    [
        ("[NaN, 0, 1, 1]", "bad_json"),
        ("[Infinity, 0, 1, 1]", "bad_json"),
        ("[1e999, 0, 1, 1]", "bad_json"),
        ("[1e300, 0, 1e300, 1]", "bad_number"),
        ('[{"bbox_2d": [0, 0, 10, 10]}, {"bbox_2d": [0, 0,', "bad_json"),
    ],
)
def test_bad_numbers_and_truncated_json_give_zero_with_a_code(answer, code):
    r = score(wrap(answer), boxes([0, 0, 10, 10]), "format", "f1", "miou", "giou")
    assert r.reward == 0.0 and r.error.code == code
    assert r.components == {"format": 0.0, "f1": 0.0, "miou": 0.0, "giou": -1.0}
