"""Edges of the answer: boxes past the image edge, class-answer punctuation, Visual-RFT's
bracket repair."""

from __future__ import annotations

import pytest

from schemas.reward import BoxSolution, LabelSolution, Sample
from services.reward.scoring import score_samples


def box_sample(answer: str, gt, frame=None) -> Sample:
    return Sample.model_validate(
        {
            "id": "s",
            "completion": f"<think>t</think><answer>{answer}</answer>",
            "solution": {"boxes": gt},
            "frame": frame or {"coords": "pixel", "image_size": [640, 480]},
        }
    )


@pytest.mark.parametrize("copies", [1, 6])  # per-sample and batched geometry
def test_overshooting_box_is_clipped_to_the_image(copies):
    # GT ends at the bottom edge; the prediction overshoots by 32 px (6.7 % of 480)
    s = box_sample("[[100, 300, 200, 512]]", [[100, 300, 200, 480]])
    (r, *_) = score_samples([s] * copies, "dig")
    assert r.error is None and r.components["format"] == 1.0
    assert r.components["miou"] == pytest.approx(1.0)  # clipped: [100, 300, 200, 480]
    # y2 = 504 on a 480-px image (5 %): scored, not bad_frame
    s = box_sample("[[100, 300, 200, 504]]", [[100, 300, 200, 480]])
    (r, *_) = score_samples([s] * copies, "dig")
    assert r.error is None and r.components["f1"] == 1.0
    # negative coordinates clip to 0 (x1 = −20 → 0): IoU([0,0,50,50], [0,0,50,50]) = 1
    s = box_sample("[[-20, -10, 50, 50]]", [[0, 0, 50, 50]])
    (r, *_) = score_samples([s] * copies, "dig")
    assert r.components["miou"] == pytest.approx(1.0)


def test_clipping_follows_the_frame():
    # norm1000 on 640×480: 1060 → 674 px, clipped to 640; GT [320, 0, 640, 240]
    frame = {"coords": "norm1000", "image_size": [640, 480]}
    s = box_sample("[[500, 0, 1060, 500]]", [[320, 0, 640, 240]], frame)
    (r,) = score_samples([s], "dig")
    assert r.components["miou"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "answer, frame",
    [
        ("[[100, 300, 200, 529]]", None),  # 49 px = 10.2 % past 480
        ("[[-70, 0, 100, 100]]", None),  # 70 px = 10.9 % of 640 before 0
        ("[[10, 10, 1101, 500]]", {"coords": "norm1000", "image_size": [640, 480]}),
    ],
)
def test_numbers_beyond_the_margin_are_bad_frame(answer, frame):
    (r,) = score_samples([box_sample(answer, [[0, 0, 10, 10]], frame)], "dig")
    assert r.reward == 0.0 and r.error.code == "bad_frame"


def test_pixel_frame_without_size_is_not_clipped():
    s = Sample.model_validate(
        {
            "id": "s",
            "completion": "<think>t</think><answer>[[-10, 0, 10, 10]]</answer>",
            "solution": {"boxes": [[0, 0, 10, 10]]},
        }
    )
    (r,) = score_samples([s], "dig")
    assert r.components["miou"] == pytest.approx(0.5)  # [−10, 0, 10, 10] ∩ GT = half


def label(answer: str, gt: str = "sunflower", synonyms=()) -> Sample:
    return Sample(
        id="s",
        completion=f"<think>t</think><answer>{answer}</answer>",
        solution=LabelSolution(label=gt, synonyms=list(synonyms)),
    )


@pytest.mark.parametrize(
    "answer",
    ["Sunflower.", "sunflower!", '"sunflower"', "'Sunflower.'", "“sunflower”", " sun flower ?"],
)
def test_quotes_and_trailing_punctuation_are_stripped(answer):
    (r,) = score_samples([label(answer)], "virft_classification")
    assert r.components["accuracy"] == 1.0


@pytest.mark.parametrize("answer", ["sun", "sunflowers", "a sunflower", '""', "...", "'"])
def test_substrings_and_empty_answers_still_do_not_match(answer):
    (r,) = score_samples([label(answer)], "virft_classification")
    assert r.components.get("accuracy", 0.0) == 0.0


def test_inner_punctuation_is_kept():
    (r,) = score_samples([label("bird's nest fern", gt="birds nest fern")], "virft_classification")
    assert r.components["accuracy"] == 0.0
    (r,) = score_samples(
        [label("Bird's nest fern.", gt="bird's nest fern")], "virft_classification"
    )
    assert r.components["accuracy"] == 1.0


def test_virft_bracket_repair_is_reproduced():
    """Visual-RFT replaces ``[[`` by ``[`` and ``]]`` by ``]`` before parsing."""
    gt = BoxSolution(boxes=[[10, 10, 50, 50]])
    nested = "[{'Position': [[10, 10, 50, 50]], 'Confidence': 0.99}]"
    s = Sample(id="s", completion=f"<think>t</think><answer>{nested}</answer>", solution=gt)
    (r,) = score_samples([s], "virft_detection")
    assert r.error is None
    assert r.components == pytest.approx(
        {"virft_iou": 1.0, "virft_confidence": 0.99, "format": 1.0}
    )
    # without the repair (any non-Visual-RFT preset) the nested box is a bad box
    (r,) = score_samples([s], "dig")
    assert r.error.code == "bad_box"
    # double-wrapped list of items
    double = "[[{'Position': [10, 10, 50, 50], 'Confidence': 0.5}]]"
    s = Sample(id="s", completion=f"<think>t</think><answer>{double}</answer>", solution=gt)
    (r,) = score_samples([s], "virft_detection")
    assert r.components["virft_iou"] == 1.0
