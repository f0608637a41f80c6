"""Components that reproduce peer rewards: VLM-R1 detection (``od_ap``, ``weighted_sum``),
VisionReasoner (``vr_accuracy``, ``vr_format``, ``non_repeat``), Perception-R1's box-token
format (``qwen_box_format``) and R1-V's answer match (``exact_answer``).

Each docstring names the peer behaviour it reproduces and what it deliberately does not;
every threshold decision is exact near the boundary (``matching.NEAR``).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import linear_sum_assignment

from schemas.reward import BoxSolution, LabelSolution
from services.reward.scoring.base import Prepared, sample_component
from services.reward.scoring.components import exact_pairs, think_answer_layout
from services.reward.scoring.geometry import exact, exact_scale, frame_extent, frame_scale
from services.reward.scoring.matching import NEAR, at_least, clean_label, normalise
from services.reward.scoring.pairs import pair_matrices
from services.reward.scoring.parse import BoxAnswer, LabelAnswer

# ---- VLM-R1 detection ------------------------------------------------------------------------

COCO_THRESHOLDS = tuple(Fraction(50 + 5 * k, 100) for k in range(10))
"""AP@[.50:.05:.95] as exact decimals (pycocotools uses ``np.linspace``'s floats)."""
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
"""COCO's 101 recall thresholds (the same floats as pycocotools)."""
MAX_DETS = 100


class ODParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iou_thresholds: Literal["coco", "0.5"] = Field(
        default="coco",
        description="coco: AP averaged over IoU 0.50:0.05:0.95 (VLM-R1 od_ap, COCOeval "
        "stats[0]); 0.5: AP50 (od_ap50, stats[1])",
    )
    length_factor: bool = Field(
        default=False,
        description="multiply by min(1, #GT / #predictions) (VLM-R1 odLength)",
    )


def _labels(s: Prepared) -> tuple[list[str | None], list[str | None]]:
    """Normalised prediction and GT labels (all None when the GT has no labels)."""
    ans = s.answer
    assert isinstance(ans, BoxAnswer)
    gt = s.truth.labels
    if gt is None:
        return [None] * ans.n, [None] * len(s.truth.boxes)  # type: ignore[arg-type]
    pl = ans.labels or [None] * ans.n
    return (
        [normalise(clean_label(v)) if v is not None else "\0" for v in pl],
        [normalise(clean_label(v)) for v in gt],
    )


def coco_ap(
    iou: np.ndarray,
    pred_labels: list[str | None],
    gt_labels: list[str | None],
    thresholds: tuple[Fraction, ...],
    exact_iou: object = None,
) -> float:
    """COCO average precision of one image whose predictions all have the same score, in
    list order (VLM-R1's ``calculate_map``: every score 1.0, pycocotools' stable sort).

    Per GT category c (categories = the GT labels; predictions with another label are
    dropped, as VLM-R1 drops them) and threshold t: the first 100 predictions of c in order
    each take the unmatched GT of c with the highest IoU ≥ t (the last one among equal IoUs,
    as COCOeval's loop); precision p_k = TP_k / k along the list, made non-increasing from
    the right; AP_t,c = mean over the 101 recall points r of p at the first k with
    recall ≥ r (0 beyond the last recall). Result: mean over t and c. ``iou: (N, M)``.
    """
    cats = list(dict.fromkeys(gt_labels))
    values = []
    for c in cats:
        gi = [j for j, g in enumerate(gt_labels) if g == c]
        pi = [i for i, p in enumerate(pred_labels) if c is None or p == c][:MAX_DETS]
        for t in thresholds:
            values.append(_ap_one(iou, pi, gi, t, exact_iou))
    return float(np.mean(values)) if values else 0.0


def _ap_one(iou: np.ndarray, pi: list[int], gi: list[int], t: Fraction, exact_iou) -> float:
    tf = float(t)
    free = dict.fromkeys(gi, True)
    tp = []
    for i in pi:
        best, m = min(tf, 1 - 1e-10), -1
        for j in gi:
            if not free[j]:
                continue
            v = float(iou[i, j])
            if m < 0:
                ok = at_least([v], [i], [j], tf, exact_iou)[0]  # type: ignore[arg-type]
                if not ok:
                    continue
            elif v < best:
                continue
            best, m = v, j
        tp.append(m >= 0)
        if m >= 0:
            free[m] = False
    if not tp:
        return 0.0
    tps = np.cumsum(tp, dtype=np.float64)
    fps = np.cumsum([not x for x in tp], dtype=np.float64)
    rc = tps / len(gi)
    pr = tps / (tps + fps + np.spacing(1))
    pr = np.maximum.accumulate(pr[::-1])[::-1]
    idx = np.searchsorted(rc, RECALL_POINTS, side="left")
    q = np.where(idx < len(pr), pr[np.minimum(idx, len(pr) - 1)], 0.0)
    return float(q.mean())


@sample_component("od_ap", needs="boxes", bounds=(0.0, 1.0), params=ODParams)
def od_ap_reward(s: Prepared, p: ODParams) -> float:
    """VLM-R1 ``od_ap`` / ``od_ap50`` / ``odLength`` (grpo_jsonl.py ``map_reward``): COCO
    AP of the answer's boxes, every prediction scored 1.0 so the list order ranks them
    (:func:`coco_ap`); predictions whose label is not a GT label are dropped; both lists
    empty → 1, exactly one empty → 0. ``length_factor``: × min(1, #GT / #predictions), every
    parsed prediction counted. Without the GT-``None`` pass (an answer with no parsable
    boxes is a parse error, 0) and without pycocotools' float thresholds (0.6000000000000001
    and so on): IoU ≥ t is decided exactly for t = 0.50, 0.55, …, 0.95."""
    ans = s.answer
    assert isinstance(ans, BoxAnswer) and s.truth.boxes is not None
    n, m = ans.n, s.truth.boxes.shape[0]
    if n == 0 or m == 0:
        return 1.0 if n == m else 0.0
    thresholds = COCO_THRESHOLDS if p.iou_thresholds == "coco" else (Fraction(1, 2),)
    pl, gl = _labels(s)
    ap = coco_ap(pair_matrices(s)[0], pl, gl, thresholds, exact_pairs(s))
    return ap * min(1.0, m / n) if p.length_factor else ap


class WeightedSumParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iou_threshold: float = Field(default=0.5, gt=0.0, le=1.0, description="IoU ≥ this matches")
    alpha: float = Field(default=0.7, ge=0.0, le=1e6, description="weight of the position score")
    beta: float = Field(default=0.0, ge=0.0, le=1e6, description="weight of the label score")
    gamma: float = Field(
        default=0.3, ge=0.0, le=1e6, description="weight of the completeness score"
    )


@sample_component("weighted_sum", needs="boxes", bounds=(0.0, 1.0), params=WeightedSumParams)
def weighted_sum_reward(s: Prepared, p: WeightedSumParams) -> float:
    """VLM-R1 ``weighted_sum`` (``detection_score``): greedy global matching — repeatedly the
    unmatched (prediction, GT) pair of highest IoU (the first in row-major order among
    equal IoUs), while that IoU ≥ ``iou_threshold`` (decided exactly); a pair whose labels
    differ is used up with IoU 0. position = Σ IoU of same-label pairs / M; label = #same-
    label pairs / M; completeness = 1 − (unmatched GT / M + unmatched predictions / N) / 2;
    reward = (α·position + β·label + γ·completeness) / (α + β + γ). GT empty → 1 if no
    prediction else 0; no prediction → 0. Labels compare after normalisation (VLM-R1:
    lower case only); a prediction without a label is a mismatch (VLM-R1 raises
    UnboundLocalError and stops training); IoU without VLM-R1's 1-pixel overlap quirk."""
    ans = s.answer
    assert isinstance(ans, BoxAnswer) and s.truth.boxes is not None
    n, m = ans.n, s.truth.boxes.shape[0]
    if m == 0:
        return 1.0 if n == 0 else 0.0
    if n == 0:
        return 0.0
    iou = pair_matrices(s)[0]
    pl, gl = _labels(s)
    exact_iou = exact_pairs(s)
    work = iou.copy()
    pos = same = 0.0
    pairs = 0
    for _ in range(min(n, m)):
        flat = int(np.argmax(work))
        i, j = divmod(flat, m)
        best = float(work[i, j])
        if best < p.iou_threshold - NEAR:
            break
        close = np.argwhere(work >= best - NEAR)
        if len(close) > 1:  # exact ties: the first pair in row-major order of the exact max
            vals = [exact_iou(int(a), int(b)) for a, b in close]
            top = max(vals)
            i, j = (int(v) for v in close[vals.index(top)])
            best = float(iou[i, j])
        if not at_least([best], [i], [j], p.iou_threshold, exact_iou)[0]:
            break
        pairs += 1
        if pl[i] == gl[j]:
            pos += best
            same += 1
        work[i, :] = -1.0
        work[:, j] = -1.0
    completeness = 1.0 - ((m - pairs) / m + (n - pairs) / n) / 2.0
    total = p.alpha + p.beta + p.gamma
    if total == 0:
        return 0.0
    return (p.alpha * pos / m + p.beta * same / m + p.gamma * completeness) / total


# ---- VisionReasoner --------------------------------------------------------------------------


class VRParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iou_threshold: float = Field(default=0.5, gt=0.0, le=1.0, description="IoU > this (+1 px)")
    l1_threshold: float = Field(
        default=10.0,
        gt=0.0,
        le=1e6,
        description="mean |Δ| of the 4 box coordinates < this (frame units)",
    )
    point_threshold: float = Field(
        default=30.0, gt=0.0, le=1e6, description="point distance < this (frame units)"
    )


VR_MAX_OBJECTS = 120
"""VisionReasoner cuts both lists to their first 120 items."""


def _in_frame_units(s: Prepared) -> tuple[list[list[Fraction]], list[list[Fraction]]]:
    """Exact predicted boxes (clipped to the frame, inverted sides collapsed) and GT boxes in
    the completion's units."""
    ans = s.answer
    assert isinstance(ans, BoxAnswer)
    sol = s.truth.solution
    assert isinstance(sol, BoxSolution)
    sx, sy = exact_scale(s.truth.frame)
    ext = frame_extent(s.truth.frame)
    pred = []
    for row in ans.rows:
        b = [exact(v) for v in row]
        if ext is not None and s.truth.frame.image_size is not None:
            ex, ey = Fraction(ext[0]), Fraction(ext[1])
            b = [min(max(v, Fraction(0)), ex if k % 2 == 0 else ey) for k, v in enumerate(b)]
        pred.append([b[0], b[1], max(b[0], b[2]), max(b[1], b[3])])
    gt = [[exact(v) / (sx if k % 2 == 0 else sy) for k, v in enumerate(g)] for g in sol.boxes]
    return pred, gt


def _vr_criteria(s: Prepared, p: VRParams) -> np.ndarray:
    """``(N, M)`` number of satisfied criteria (0–3): IoU > τ with the +1-pixel convention,
    mean |Δ| < l1, and ‖Δpoint‖ < d with the predicted point inside its own box; evaluated
    in the completion's frame units (VisionReasoner: pixels of its 840×840 input)."""
    ans = s.answer
    sol = s.truth.solution
    assert isinstance(ans, BoxAnswer) and isinstance(sol, BoxSolution)
    if sol.points is None:
        raise ValueError("vr_accuracy needs solution.points (one [x, y] per GT box)")
    sx, sy = frame_scale(s.truth.frame)
    pred = np.array(ans.rows, dtype=np.float64)[:VR_MAX_OBJECTS]
    ext = frame_extent(s.truth.frame)
    if ext is not None and s.truth.frame.image_size is not None:
        np.clip(pred[:, 0::2], 0.0, ext[0], out=pred[:, 0::2])
        np.clip(pred[:, 1::2], 0.0, ext[1], out=pred[:, 1::2])
    np.maximum(pred[:, 2], pred[:, 0], out=pred[:, 2])  # inverted → collapsed (canonical)
    np.maximum(pred[:, 3], pred[:, 1], out=pred[:, 3])
    scale = np.array((sx, sy, sx, sy))
    gt = (np.array(sol.boxes, dtype=np.float64) / scale)[:VR_MAX_OBJECTS]
    gpt = (np.array(sol.points, dtype=np.float64) / scale[:2])[:VR_MAX_OBJECTS]
    n = pred.shape[0]
    pts = ans.points or [None] * ans.n
    ppt = np.array([q if q is not None else (np.nan, np.nan) for q in pts[:n]], dtype=np.float64)
    ppt = ppt.reshape(n, 2)
    a, b = pred[:, None, :], gt[None, :, :]
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0)
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    l1 = np.abs(a - b).mean(axis=2)
    d2 = ((ppt[:, None, :] - gpt[None, :, :]) ** 2).sum(axis=2)
    inside = (
        (ppt[:, 0] >= pred[:, 0])
        & (ppt[:, 0] <= pred[:, 2])
        & (ppt[:, 1] >= pred[:, 1])
        & (ppt[:, 1] <= pred[:, 3])
    )
    c_iou = iou > p.iou_threshold
    c_l1 = l1 < p.l1_threshold
    c_pt = (d2 < p.point_threshold**2) & inside[:, None]
    near = (
        (np.abs(iou - p.iou_threshold) <= NEAR)
        | (np.abs(l1 - p.l1_threshold) <= NEAR * max(1.0, p.l1_threshold))
        | (np.abs(d2 - p.point_threshold**2) <= NEAR * max(1.0, p.point_threshold**2))
    )
    if near.any():
        _exact_criteria(s, p, near, c_iou, c_l1, c_pt, inside)
    return c_iou.astype(np.int64) + c_l1 + c_pt


def _exact_criteria(s, p, near, c_iou, c_l1, c_pt, inside) -> None:  # type: ignore[no-untyped-def]
    """Re-decide the near-threshold entries of the three criteria in exact arithmetic."""
    pred, gt = _in_frame_units(s)
    sol = s.truth.solution
    sx, sy = exact_scale(s.truth.frame)
    pts = s.answer.points or [None] * s.answer.n
    tau, l1t, dt = exact(p.iou_threshold), exact(p.l1_threshold), exact(p.point_threshold)
    one = Fraction(1)
    for i, j in np.argwhere(near).tolist():
        a, b = pred[i], gt[j]
        iw = max(min(a[2], b[2]) - max(a[0], b[0]) + one, Fraction(0))
        ih = max(min(a[3], b[3]) - max(a[1], b[1]) + one, Fraction(0))
        inter = iw * ih
        union = (
            (a[2] - a[0] + one) * (a[3] - a[1] + one)
            + (b[2] - b[0] + one) * (b[3] - b[1] + one)
            - inter
        )
        c_iou[i, j] = union > 0 and inter / union > tau
        c_l1[i, j] = sum(abs(u - v) for u, v in zip(a, b, strict=True)) < 4 * l1t
        q = pts[i]
        if q is not None and inside[i]:
            g = sol.points[j]
            dx = exact(q[0]) - exact(g[0]) / sx
            dy = exact(q[1]) - exact(g[1]) / sy
            c_pt[i, j] = dx * dx + dy * dy < dt * dt


@sample_component("vr_accuracy", needs="boxes", bounds=(0.0, 3.0), params=VRParams)
def vr_accuracy_reward(s: Prepared, p: VRParams) -> float:
    """VisionReasoner accuracy (Seg-Zero ``vision_reasoner.py``): for every (prediction, GT)
    pair the number of satisfied binary criteria — IoU > 0.5 (+1-pixel areas), mean
    |Δ coordinate| < 10, point distance < 30 with the predicted point inside its box —
    Hungarian assignment (``linear_sum_assignment``) maximising their sum, reward = Σ over
    assigned pairs / max(N, M) ∈ [0, 3]; both lists cut to 120. Thresholds are in the
    completion's frame units (VisionReasoner: pixels of its 840×840 input). Both empty → 3,
    one empty → 0. A prediction without ``point_2d`` fails only the point criterion
    (VisionReasoner: KeyError, 0 for the whole answer)."""
    ans = s.answer
    assert isinstance(ans, BoxAnswer) and s.truth.boxes is not None
    n, m = min(ans.n, VR_MAX_OBJECTS), min(s.truth.boxes.shape[0], VR_MAX_OBJECTS)
    if n == 0 or m == 0:
        return 3.0 if n == m else 0.0
    score = _vr_criteria(s, p)
    r, c = linear_sum_assignment(3 - score)
    return float(score[r, c].sum()) / max(n, m)


@sample_component("vr_format", needs="boxes", bounds=(0.0, 3.0))
def vr_format_reward(s: Prepared, _p: object) -> float:
    """VisionReasoner format: 1 for the think/answer layout (:func:`think_answer_layout`)
    plus, averaged over the answer's items, 1 for a 4-number box and 1 for a 2-number
    ``point_2d`` ∈ [0, 3]. The answer must parse (else 0 like every component; VisionReasoner
    still gives the layout's 1); an empty list scores 2 for its items (VisionReasoner: 0,
    a division by zero)."""
    ans = s.answer
    assert isinstance(ans, BoxAnswer)
    layout = 1.0 if think_answer_layout(s.completion) else 0.0
    if ans.n == 0:
        return layout + 2.0
    pts = ans.points or []
    return layout + 1.0 + sum(q is not None for q in pts) / ans.n


def repeated_sentences(text: str) -> int:
    """Sentences (split on ``.``, stripped, empty ones dropped) equal to an earlier one."""
    seen: set[str] = set()
    repeats = 0
    for part in text.split("."):
        sentence = part.strip()
        if not sentence:
            continue
        if sentence in seen:
            repeats += 1
        seen.add(sentence)
    return repeats


@sample_component("non_repeat", needs="any", bounds=(0.0, 1.0))
def non_repeat_reward(s: Prepared, _p: object) -> float:
    """VisionReasoner non-repeat: 0 when at least two sentences of the whole completion
    (split on ``.``) repeat an earlier one exactly (after strip), else 1."""
    return 0.0 if repeated_sentences(s.completion) >= 2 else 1.0


# ---- Perception-R1 ---------------------------------------------------------------------------

_QWEN_BOX = re.compile(
    r"<\|object_ref_start\|>.*?<\|object_ref_end\|>\s*<\|box_start\|>.*?<\|box_end\|>",
    re.DOTALL,
)


@sample_component(
    "qwen_box_format",
    needs="boxes",
    bounds=(0.0, 1.0),
    parse=frozenset({"whole_completion"}),
)
def qwen_box_format_reward(s: Prepared, _p: object) -> float:
    """Perception-R1 grounding format, as its pattern intends: the completion (without
    ``<|endoftext|>`` and a final ``<|im_end|>``) is ``<|object_ref_start|>…<|object_ref_end|>
    <|box_start|>…<|box_end|>`` and its box parses (Perception-R1's unescaped ``|`` makes its
    check 1 for any text starting with ``<``). Parses with ``whole_completion``: Perception-R1
    answers in box tokens without ``<answer>`` tags."""
    text = s.completion.replace("<|endoftext|>", "").strip()
    if text.endswith("<|im_end|>"):
        text = text[: -len("<|im_end|>")].rstrip()
    ans = s.answer
    ok = _QWEN_BOX.fullmatch(text) is not None and isinstance(ans, BoxAnswer) and ans.n > 0
    return 1.0 if ok else 0.0


# ---- R1-V ------------------------------------------------------------------------------------


class ExactAnswerParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    numeric: bool = Field(
        default=True,
        description="answers that both read as numbers compare as numbers ('3' = '3.0')",
    )


def _number(text: str) -> float | None:
    try:
        v = float(text.replace(",", ""))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


@sample_component("exact_answer", needs="label", bounds=(0.0, 1.0), params=ExactAnswerParams)
def exact_answer_reward(s: Prepared, p: ExactAnswerParams) -> float:
    """R1-V accuracy (grpo.py): 1 when the stripped answer equals the solution's label (or a
    synonym) as a string, else 0; with ``numeric``, two answers that both read as numbers
    are equal when their values are (in place of R1-V's math_verify step, which for counting
    answers compares the numbers). Case and punctuation matter, as in R1-V."""
    ans, sol = s.answer, s.truth.solution
    assert isinstance(ans, LabelAnswer) and isinstance(sol, LabelSolution)
    got = ans.text.strip()
    for target in (sol.label, *sol.synonyms):
        t = target.strip()
        if got == t:
            return 1.0
        if p.numeric:
            a, b = _number(got), _number(t)
            if a is not None and a == b:
                return 1.0
    return 0.0
