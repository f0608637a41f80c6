import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.reward import BoxSolution, Sample
from services.reward.scoring import compiled, score_samples
from services.reward.scoring.parse import (
    BoxAnswer,
    LabelAnswer,
    ParseError,
    extract_answer,
    parse_boxes,
    parse_label,
)


def wrap(answer: str) -> str:
    return f"<think>t</think><answer>{answer}</answer>"


def boxes_of(completion: str) -> list[list[float]]:
    got = parse_boxes(completion)
    assert isinstance(got, BoxAnswer), got
    return got.boxes.tolist()


def code_of(completion: str) -> str:
    got = parse_boxes(completion)
    assert isinstance(got, ParseError), got
    return got.code


def test_last_answer_block_across_lines_is_used():
    text = "<answer>[1, 2, 3, 4]</answer> then\n<answer>\n[5, 6,\n 7, 8]\n</answer>"
    assert extract_answer(text) == "\n[5, 6,\n 7, 8]\n"
    assert boxes_of(text) == [[5, 6, 7, 8]]


def test_unclosed_last_block_falls_back_to_last_complete_one():
    assert extract_answer("<answer>a</answer><answer>b") == "a"
    assert extract_answer("no tags") is None
    assert extract_answer("</answer> only") is None


@pytest.mark.parametrize(
    "answer, expected",
    [
        ('[{"bbox_2d": [1, 2, 3, 4], "label": "cat"}]', [[1, 2, 3, 4]]),
        ("[{'Position': [10, 20, 30, 40], 'Confidence': 0.9}]", [[10, 20, 30, 40]]),
        ("[1, 2, 3, 4]", [[1, 2, 3, 4]]),
        ("[[1, 2, 3, 4], [5, 6, 7.5, 8]]", [[1, 2, 3, 4], [5, 6, 7.5, 8]]),
        ('{"bbox_2d": [1, 2, 3, 4]}', [[1, 2, 3, 4]]),
        ('```json\n[{"bbox_2d": [1, 2, 3, 4]}]\n```', [[1, 2, 3, 4]]),
        ("<|box_start|>(1,2),(3,4)<|box_end|>", [[1, 2, 3, 4]]),
        ("(1, 2), (3, 4) and (5,6),(7,8)", [[1, 2, 3, 4], [5, 6, 7, 8]]),
        ("the box is [1, 2, 3, 4].", [[1, 2, 3, 4]]),
        ("[]", []),
    ],
)
def test_box_dialects(answer, expected):
    assert boxes_of(wrap(answer)) == expected


def test_labels_and_confidences_are_kept():
    got = parse_boxes(wrap('[{"bbox_2d": [1,2,3,4], "label": "cat"}, {"bbox_2d": [1,2,3,5]}]'))
    assert isinstance(got, BoxAnswer)
    assert got.labels == ["cat", None]
    got = parse_boxes(wrap("[{'Position': [1,2,3,4], 'Confidence': 0.25}]"))
    assert got.confidences == [0.25]
    got = parse_boxes(
        wrap("<|object_ref_start|>dog<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|>")
    )
    assert got.labels == ["dog"]


@pytest.mark.parametrize(
    "completion, code",
    [
        ("no answer at all", "no_answer"),
        (wrap("   "), "empty_answer"),
        (wrap('[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [5, 6'), "bad_json"),  # truncated
        (wrap("There are no such objects."), "no_boxes"),
        (wrap("None"), "no_boxes"),
        (wrap("[1, 2, 3]"), "bad_box"),
        (wrap('[{"label": "cat"}]'), "bad_box"),
        (wrap('[{"bbox_2d": [1, 2, 3, "4"]}]'), "bad_number"),
        (wrap('[{"bbox_2d": [1, 2, 3, true]}]'), "bad_number"),
        (wrap("[NaN, 1, 2, 3]"), "bad_json"),
        (wrap("[1e400, 1, 2, 3]"), "bad_json"),
        (wrap("[1e300, 1, 2, 3]"), "bad_number"),
        (wrap("(1e400, 1), (2, 3)"), "bad_number"),
        (wrap('[{"Position": [1, 2, 3, 4], "Confidence": "high"}]'), "bad_number"),
    ],
)
def test_parse_failures_are_codes_not_exceptions(completion, code):
    assert code_of(completion) == code


def test_too_many_boxes():
    text = wrap(str([[0, 0, 1, 1]] * 5))
    assert isinstance(parse_boxes(text, max_boxes=5), BoxAnswer)
    assert parse_boxes(text, max_boxes=4).code == "too_many_boxes"  # type: ignore[union-attr]


def test_inverted_boxes_are_kept_and_counted():
    got = parse_boxes(wrap("[[10, 10, 5, 20], [0, 0, 1, 1]]"))
    assert isinstance(got, BoxAnswer)
    assert got.inverted == 1
    assert got.n == 2


def test_huge_but_finite_numbers_are_refused():
    got = parse_boxes(wrap("[0, 0, 20000000, 1]"))
    assert isinstance(got, ParseError) and got.code == "bad_number"
    assert math.isfinite(float(np.array([1e7]).max()))


def test_label_answers():
    assert parse_label(wrap(" Boeing 737 ")) == LabelAnswer("Boeing 737")
    assert parse_label(wrap("")).code == "empty_answer"  # type: ignore[union-attr]
    assert parse_label("Boeing 737").code == "no_answer"  # type: ignore[union-attr]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["bbox_2d", "Position", "label", "Confidence", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), json_values.map(lambda v: wrap(json.dumps(v)))))
def test_parsing_and_scoring_never_raise(completion):
    got = parse_boxes(completion)
    assert isinstance(got, BoxAnswer | ParseError)
    if isinstance(got, BoxAnswer):
        assert np.isfinite(got.boxes).all() and got.boxes.shape == (got.n, 4)
    assert isinstance(parse_label(completion), LabelAnswer | ParseError)
    sample = Sample(id="s", completion=completion, solution=BoxSolution(boxes=[[0, 0, 10, 10]]))
    for preset in ("dig", "virft_detection", "vlmr1_rec"):
        (r,) = score_samples([sample], preset)
        assert math.isfinite(r.reward) and 0.0 <= r.reward <= 3.0
        parsed = parse_boxes(completion, options=compiled(preset).parse_options)
        assert (r.error is None) == isinstance(parsed, BoxAnswer)


item_lists = st.lists(
    st.fixed_dictionaries(
        {"bbox_2d": st.lists(st.integers(-5, 900) | st.floats(-5, 900), min_size=3, max_size=5)},
        optional={
            "label": st.sampled_from(["a", "b"]) | st.integers(0, 2),
            "point_2d": st.just([1, 2]),
        },
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(item_lists.map(lambda v: wrap(json.dumps(v))) | st.text(max_size=40), max_size=8))
def test_bulk_parse_equals_one_by_one(completions):
    from services.reward.scoring.parse import parse_boxes_many

    bulk = parse_boxes_many(completions)
    for c, got in zip(completions, bulk, strict=True):
        want = parse_boxes(c)
        assert type(got) is type(want)
        if isinstance(want, BoxAnswer):
            assert (got.rows, got.labels, got.confidences, got.points) == (
                want.rows,
                want.labels,
                want.confidences,
                want.points,
            )
            np.testing.assert_array_equal(got.boxes, want.boxes)
            assert got.inverted == want.inverted
        else:
            assert got == want
