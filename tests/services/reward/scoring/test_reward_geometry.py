import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.geometry import Frame
from services.reward.scoring.geometry import (
    box_area,
    canonical,
    from_pixels,
    giou,
    iou,
    iou_giou_matrix,
    l1_matrix,
    paired_inter_union,
    paired_iou,
    to_pixels,
)
from services.reward.scoring.pairs import _bucket_blocks

coord = st.floats(min_value=-1000, max_value=1000, allow_nan=False, width=32)


@st.composite
def boxes(draw):
    x1, y1 = draw(coord), draw(coord)
    w = draw(st.floats(min_value=0, max_value=500, width=32))
    h = draw(st.floats(min_value=0, max_value=500, width=32))
    return [x1, y1, x1 + w, y1 + h]


def test_hand_computed_iou_and_giou():
    # a = [0,0,2,2], b = [1,1,3,3]: I = 1, U = 7, C = 9
    assert iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert giou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7 - 2 / 9)
    # disjoint: [0,0,1,1] vs [2,0,3,1]: I = 0, U = 2, C = 3
    assert iou([0, 0, 1, 1], [2, 0, 3, 1]) == 0.0
    assert giou([0, 0, 1, 1], [2, 0, 3, 1]) == pytest.approx(-1 / 3)
    assert iou([0, 0, 4, 4], [0, 0, 4, 4]) == 1.0
    # zero-area boxes never overlap; identical points have C = 0 → GIoU = IoU = 0
    assert iou([1, 1, 1, 1], [1, 1, 1, 1]) == 0.0
    assert giou([1, 1, 1, 1], [1, 1, 1, 1]) == 0.0


def test_canonical_makes_inverted_boxes_zero_area():
    out = canonical(np.array([[10.0, 10, 5, 20], [0, 0, 2, 2]]))
    assert out.tolist() == [[10, 10, 10, 20], [0, 0, 2, 2]]
    assert iou(out[0], [0, 0, 100, 100]) == 0.0


@settings(max_examples=200, deadline=None)
@given(boxes(), boxes())
def test_iou_giou_symmetric_and_bounded(a, b):
    assert iou(a, b) == pytest.approx(iou(b, a), abs=1e-9)
    assert giou(a, b) == pytest.approx(giou(b, a), abs=1e-9)
    assert 0.0 <= iou(a, b) <= 1.0
    assert -1.0 - 1e-9 <= giou(a, b) <= iou(a, b) + 1e-9


@settings(max_examples=100, deadline=None)
@given(st.lists(boxes(), min_size=1, max_size=5), st.lists(boxes(), min_size=1, max_size=5))
def test_matrix_matches_scalar_and_flat_pair_version(pa, pb):
    a, b = np.array(pa), np.array(pb)
    m_iou, m_giou = iou_giou_matrix(a, b)
    for i in range(len(pa)):
        for j in range(len(pb)):
            assert m_iou[i, j] == pytest.approx(iou(pa[i], pb[j]))
    size = np.ones((1, 1, 4))
    blocks = _bucket_blocks(a[None], b[None], size, [])  # the batched version: bit-identical
    np.testing.assert_array_equal(blocks[0, 0], m_iou)
    np.testing.assert_array_equal(blocks[0, 1], m_giou)


def test_l1_is_normalised_by_image_size():
    d = l1_matrix(np.array([[0.0, 0, 10, 10]]), np.array([[10.0, 20, 20, 30]]), (100, 200))
    assert d[0, 0] == pytest.approx(10 / 100 + 20 / 200 + 10 / 100 + 20 / 200)


FRAMES = [
    Frame(coords="pixel"),
    Frame(coords="norm1000", image_size=(640, 480)),
    Frame(coords="norm1", image_size=(33, 77)),
    Frame(coords="input", image_size=(1000, 500), input_size=(448, 224)),
]


def test_frames_by_hand():
    raw = np.array([[500.0, 500, 1000, 1000]])
    assert to_pixels(raw, FRAMES[1]).tolist() == [[320, 240, 640, 480]]
    assert to_pixels(np.array([[0.5, 0.5, 1, 1]]), FRAMES[2]).tolist() == [[16.5, 38.5, 33, 77]]
    got = to_pixels(np.array([[224.0, 112, 448, 224]]), FRAMES[3])
    np.testing.assert_allclose(got, [[500, 250, 1000, 500]])


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(FRAMES), boxes())
def test_frame_round_trip(frame, box):
    b = np.array([box])
    np.testing.assert_allclose(to_pixels(from_pixels(b, frame), frame), b, rtol=1e-9, atol=1e-6)


# One IoU for the whole project: the benchmark metrics (row-wise pairs) and the DiG generator
# (single boxes) call this module. The references below are the scalar formulas written out
# in plain Python; the numpy versions must agree with them exactly, not approximately.

any_coord = st.floats(-500, 500, allow_nan=False, width=32) | st.integers(-50, 50).map(float)
any_box = st.tuples(any_coord, any_coord, any_coord, any_coord)  # inverted boxes included


def _ref_area(b):
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def _ref_inter_union(p, g):
    iw = max(min(p[2], g[2]) - max(p[0], g[0]), 0.0)
    ih = max(min(p[3], g[3]) - max(p[1], g[1]), 0.0)
    return iw * ih, _ref_area(p) + _ref_area(g) - iw * ih


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(any_box, any_box), min_size=1, max_size=6))
def test_paired_terms_equal_the_scalar_formula_exactly(pairs):
    p = np.array([a for a, _ in pairs])
    g = np.array([b for _, b in pairs])
    inter, union = paired_inter_union(p, g)
    ious = paired_iou(p, g)
    for k, (a, b) in enumerate(pairs):
        ri, ru = _ref_inter_union(a, b)
        assert (inter[k], union[k]) == (ri, ru)
        assert ious[k] == (ri / ru if ru > 0 else 0.0)
        assert box_area(p)[k] == _ref_area(a)


@settings(max_examples=300, deadline=None)
@given(boxes(), boxes())
def test_single_box_iou_equals_the_scalar_formula_exactly(a, b):
    ri, ru = _ref_inter_union(a, b)
    assert iou(a, b) == (ri / ru if ru > 0 else 0.0)
    assert paired_iou(np.array([a]), np.array([b]))[0] == iou(a, b)
