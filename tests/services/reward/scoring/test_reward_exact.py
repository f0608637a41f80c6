"""Threshold and tie decisions agree with exact rational arithmetic, in every frame and at
any image size (the float IoU of an exactly-τ pair is τ ± 1 ulp after a frame conversion)."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.reward import BoxSolution, RewardSpec, Sample
from services.reward.scoring import score_samples
from services.reward.scoring.geometry import exact_iou

# (frame, scale as a Fraction): pixel = raw · scale; every scale here is a finite decimal so
# that the exact pixel values can be written in JSON.
FRAMES = st.sampled_from(["pixel", "norm1000", "norm1", "input"])
TAUS = st.sampled_from([Fraction(1, 2), Fraction(3, 4), Fraction(7, 10), Fraction(3, 5)])


def dec(q: Fraction) -> str:
    """A finite-decimal Fraction written exactly (≤ 12 decimals)."""
    assert (q * 10**12).denominator == 1, q
    sign = "-" if q < 0 else ""
    n = abs(q.numerator) * (10**12 // q.denominator)
    whole, frac = divmod(n, 10**12)
    return f"{sign}{whole}.{frac:012d}".rstrip("0").rstrip(".")


@st.composite
def frame_case(draw):
    coords = draw(FRAMES)
    if coords == "input":
        b = draw(st.sampled_from([1, 2, 4, 5, 8, 10, 20, 25]))
        a = draw(st.integers(1, 40))
        iw = b * draw(st.integers(1, 60))
        ih = b * draw(st.integers(1, 60))
        w, h = iw * a // b, ih * a // b
        frame = {"coords": "input", "image_size": [w, h], "input_size": [iw, ih]}
        scale = (Fraction(w, iw), Fraction(h, ih))
        extent = (iw, ih)
    else:
        w, h = draw(st.integers(1, 4000)), draw(st.integers(1, 4000))
        frame = {"coords": coords, "image_size": [w, h]}
        scale = {
            "pixel": (Fraction(1), Fraction(1)),
            "norm1000": (Fraction(w, 1000), Fraction(h, 1000)),
            "norm1": (Fraction(w), Fraction(h)),
        }[coords]
        extent = {"pixel": (w, h), "norm1000": (1000, 1000), "norm1": (1, 1)}[coords]
    return frame, scale, extent


def raw_box(draw, extent, unit: Fraction, multiple: int):
    """A box inside the frame: corners on the grid ``unit``, width a multiple of ``multiple``."""
    ex, ey = (Fraction(e) / unit for e in extent)
    if ex < 2 * multiple or ey < 2:
        return None
    x1 = draw(st.integers(0, int(ex) - 2 * multiple))
    k = draw(st.integers(1, max(1, (int(ex) - x1) // (2 * multiple))))
    y1 = draw(st.integers(0, int(ey) - 1))
    y2 = draw(st.integers(y1 + 1, int(ey)))
    return [x1 * unit, y1 * unit, (x1 + k * multiple) * unit, y2 * unit]


def score(preset, pred_raw, gt_px, frame, conf=None, copies=1):
    if conf is None:
        items = "[" + ",".join("[" + ",".join(dec(v) for v in b) + "]" for b in pred_raw) + "]"
    else:
        items = json.dumps(
            [{"Position": [0, 0, 0, 0], "Confidence": c} for c in conf]
        )  # placeholders, replaced below to keep the decimals exact
        for b in pred_raw:
            items = items.replace("[0, 0, 0, 0]", "[" + ",".join(dec(v) for v in b) + "]", 1)
    completion = f"<think>t</think><answer>{items}</answer>"
    gt = BoxSolution.model_validate_json(
        '{"boxes": [' + ",".join("[" + ",".join(dec(v) for v in b) + "]" for b in gt_px) + "]}"
    )
    sample = Sample.model_validate(
        {"id": "s", "completion": completion, "solution": gt.model_dump(), "frame": frame}
    )
    sample = sample.model_copy(update={"solution": gt})
    out = score_samples([sample] * copies, preset)
    assert len({json.dumps(r.components, sort_keys=True) for r in out}) == 1
    return out[0]


def spec(name, **params):
    return {"components": [{"name": name, "params": params}], "aggregate": {"method": "sum"}}


@settings(max_examples=150, deadline=None)
@given(frame_case(), TAUS, st.data(), st.sampled_from([1, 5]))
def test_iou_exactly_tau_is_a_true_positive_in_every_frame(case, tau, data, copies):
    """Prediction nested in the GT with area ratio exactly τ: IoU = τ, so ``IoU ≥ τ`` holds."""
    frame, (sx, sy), extent = case
    unit = Fraction(1, 100) if frame["coords"] != "norm1" else Fraction(1, 10000)
    raw = raw_box(data.draw, extent, unit, tau.numerator)
    if raw is None:
        return
    px = [raw[0] * sx, raw[1] * sy, raw[2] * sx, raw[3] * sy]
    gt = [px[0], px[1], px[0] + (px[2] - px[0]) / tau, px[3]]
    assert exact_iou(tuple(px), tuple(gt)) == tau
    s = RewardSpec.model_validate(spec("f1", tau=float(tau)))
    r = score(s, [raw], [gt], frame, copies=copies)
    assert r.components["f1"] == 1.0
    # one grid step wider GT: IoU < τ — no longer a true positive
    wider = [gt[0], gt[1], gt[2] + unit * sx, gt[3]]
    r = score(s, [raw], [wider], frame, copies=copies)
    assert r.components["f1"] == 0.0


@settings(max_examples=150, deadline=None)
@given(frame_case(), st.data(), st.sampled_from([1, 5]))
def test_virft_strict_half_is_not_matched_in_every_frame(case, data, copies):
    """Visual-RFT's ``IoU > 0.5``: an IoU of exactly 0.5 is not a match, in any frame."""
    frame, (sx, sy), extent = case
    unit = Fraction(1, 100) if frame["coords"] != "norm1" else Fraction(1, 10000)
    raw = raw_box(data.draw, extent, unit, 1)
    if raw is None:
        return
    px = [raw[0] * sx, raw[1] * sy, raw[2] * sx, raw[3] * sy]
    gt = [px[0], px[1], 2 * px[2] - px[0], px[3]]
    r = score("virft_detection", [raw], [gt], frame, conf=[0.9], copies=copies)
    assert r.components["virft_iou"] == 0.0
    assert r.components["virft_confidence"] == pytest.approx(0.1)


@settings(max_examples=200, deadline=None)
@given(frame_case(), st.data())
def test_random_decimal_boxes_agree_with_the_exact_reference(case, data):
    """Random grid boxes (so that exact ties with τ happen often): the pipeline's TP decision
    is the exact rational ``IoU ≥ τ`` of the written decimals, for f1 and virft_iou."""
    frame, (sx, sy), extent = case
    unit = Fraction(1, 4) if frame["coords"] != "norm1" else Fraction(1, 8)
    raw = raw_box(data.draw, extent, unit, 1)
    g = raw_box(data.draw, extent, unit, 1)
    if raw is None or g is None:
        return
    gt = [g[0] * sx, g[1] * sy, g[2] * sx, g[3] * sy]
    px = (raw[0] * sx, raw[1] * sy, raw[2] * sx, raw[3] * sy)
    ref = exact_iou(px, tuple(gt))
    r = score("dig", [raw], [gt], frame)
    assert r.components["f1"] == (1.0 if ref >= Fraction(1, 2) else 0.0)
    r = score("virft_detection", [raw], [gt], frame, conf=[1.0])
    assert (r.components["virft_iou"] > 0) == (ref > Fraction(1, 2))


def test_the_issue_probe_640x480():
    """norm1000 [137, 211, 263, 517] vs pixel GT [87.68, 101.28, 248.96, 248.16]: IoU = ½."""
    frame = {"coords": "norm1000", "image_size": [640, 480]}
    gt = [[Fraction("87.68"), Fraction("101.28"), Fraction("248.96"), Fraction("248.16")]]
    pred = [[Fraction(137), Fraction(211), Fraction(263), Fraction(517)]]
    r = score("dig", pred, gt, frame)
    assert r.components["f1"] == 1.0 and r.components["miou"] == pytest.approx(0.5)
    r = score("virft_detection", pred, gt, frame, conf=[0.9])
    assert r.components["virft_iou"] == 0.0


@settings(max_examples=100, deadline=None)
@given(frame_case(), st.data())
def test_virft_equal_iou_tie_takes_the_first_gt(case, data):
    """P overlaps G1 and G2 equally (mirror images); Visual-RFT gives P the first one, G1, so
    the second prediction Q (lower confidence, only near G2) still finds G2 free."""
    frame, (sx, sy), extent = case
    unit = Fraction(1, 100) if frame["coords"] != "norm1" else Fraction(1, 10000)
    ex, ey = extent
    # P in the middle third of the frame; G1/G2 shifted by half P's width left/right
    w = Fraction(ex) / 6
    w = (w / unit // 2) * 2 * unit
    if w <= 0 or Fraction(ey) < 2 * unit:
        return
    x1 = Fraction(ex) / 2 - w / 2
    x1 = (x1 / unit // 1) * unit
    y1, y2 = Fraction(0), (Fraction(ey) / unit // 1) * unit
    p = [x1, y1, x1 + w, y2]
    px = [p[0] * sx, p[1] * sy, p[2] * sx, p[3] * sy]
    d = (px[2] - px[0]) / 4
    g1 = [px[0] - d, px[1], px[2] - d, px[3]]
    g2 = [px[0] + d, px[1], px[2] + d, px[3]]
    assert exact_iou(tuple(px), tuple(g1)) == exact_iou(tuple(px), tuple(g2)) > Fraction(1, 2)
    q = [(g2[0] + d) / sx, p[1], (g2[2]) / sx, p[3]]  # inside G2 only, IoU(Q, G2) = 3/4
    r = score("virft_detection", [p, q], [g1, g2], frame, conf=[0.9, 0.5])
    iou_p = float(exact_iou(tuple(px), tuple(g1)))
    qx = (q[0] * sx, q[1] * sy, q[2] * sx, q[3] * sy)
    iou_q = float(exact_iou(qx, tuple(g2)))
    assert iou_q > 0.5 and float(exact_iou(qx, tuple(g1))) <= 0.5
    assert r.components["virft_iou"] == pytest.approx((iou_p + iou_q) / 2)


PROBE_FRAME = {"coords": "norm1000", "image_size": [640, 480]}
PROBE_GT = [[Fraction("87.68"), Fraction("101.28"), Fraction("248.96"), Fraction("248.16")]]
PROBE_PRED = [[Fraction(137), Fraction(211), Fraction(263), Fraction(517)]]  # IoU exactly ½


def test_vlmr1_components_treat_iou_half_as_a_match():
    """od_ap50 and weighted_sum match at IoU ≥ 0.5: the exactly-½ probe counts."""
    rows = ",".join("[" + ",".join(dec(v) for v in b) + "]" for b in PROBE_PRED)
    items = rows.replace("[", '{"bbox_2d": [', 1).replace("]", '], "label": "cat"}', 1)
    completion = f"<think>t</think><answer>[{items}]</answer>"
    gt = '{"boxes": [[87.68, 101.28, 248.96, 248.16]], "labels": ["cat"]}'
    sample = Sample.model_validate(
        {"id": "s", "completion": completion, "solution": json.loads(gt), "frame": PROBE_FRAME}
    )
    (r,) = score_samples([sample], "vlmr1_detection_ap50")
    assert r.components["od_ap"] == pytest.approx(1.0)
    (r,) = score_samples([sample], "vlmr1_detection")  # 0.50 only of the ten thresholds
    assert r.components["od_ap"] == pytest.approx(0.1)
    (r,) = score_samples([sample], "vlmr1_detection_weighted_sum")
    assert r.components["weighted_sum"] == pytest.approx(0.7 * 0.5 + 0.3 * 1.0)


@pytest.mark.parametrize("x2, expected", [(49, 1.0), (50, 2.0)])
def test_vision_reasoner_iou_half_with_plus_one_areas_is_not_above(x2, expected):
    """In norm1000 units GT [0, 0, 99, 99] (+1 areas: 100×100); prediction [0, 0, 49, 99]
    has IoU exactly 5000/10000 — not > 0.5 — while [0, 0, 50, 99] has 0.51. The GT is
    given in pixels of a 640×480 image (99·0.64 = 63.36), so the float round trip is not
    exact; the exact re-check decides."""
    frame = PROBE_FRAME
    gt = {"boxes": [[0, 0, 63.36, 47.52]], "points": [[6.4, 4.8]]}  # point (10, 10) in norm1000
    c = json.dumps([{"bbox_2d": [0, 0, x2, 99], "point_2d": [10, 10]}])
    sample = Sample.model_validate(
        {
            "id": "s",
            "completion": f"<think>t</think><answer>{c}</answer>",
            "solution": gt,
            "frame": frame,
        }
    )
    (r,) = score_samples([sample], "vision_reasoner")
    # point criterion holds (distance 0, inside); L1 mean ≥ 12.25 fails; IoU decides
    assert r.components["vr_accuracy"] == expected
