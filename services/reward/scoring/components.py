"""The registered sample components (docs/rewards.md, "Components").

Each is a sync pure function ``(sample: Prepared, params) -> float`` registered with its range.
The pipeline calls them only when the answer parsed; a parse failure gives the sample a reward
of 0 and each component its range minimum.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import linear_sum_assignment

from schemas.reward import LabelSolution
from services.reward.scoring.base import Prepared, sample_component
from services.reward.scoring.geometry import exact_gt_box, exact_iou, exact_pred_box
from services.reward.scoring.matching import (
    NEAR,
    ExactIoU,
    Match,
    clean_label,
    f1_score,
    greedy_by_confidence,
    hungarian_on,
    label_mismatch,
    mean_iou,
    normalise,
)
from services.reward.scoring.pairs import BUCKET, Bucket, cost_key, cost_of, pair_matrices
from services.reward.scoring.parse import BoxAnswer, LabelAnswer


def think_answer_layout(completion: str) -> bool:
    """``<think>…</think>``, optional whitespace, one ``<answer>…</answer>``, nothing else.

    Surrounding whitespace is ignored; the think block ends at its first ``</think>``; the
    answer block must be the only one. Same layout as the peers'
    ``re.fullmatch(r"<think>.*?</think>\\s*<answer>.*?</answer>", DOTALL)``, but stricter: the
    peers' regex also accepts a second ``</think>`` or a second answer block by backtracking.
    """
    s = completion.strip()
    if not s.startswith("<think>"):
        return False
    end = s.find("</think>")
    if end < 0:
        return False
    rest = s[end + 8 :].lstrip()
    return (
        rest.startswith("<answer>")
        and rest.endswith("</answer>")
        and rest.count("<answer>") == 1
        and rest.count("</answer>") == 1
    )


def _format_many(items: list[Prepared], p: object) -> list[float]:
    return [format_reward(s, p) for s in items]


@sample_component("format", needs="any", bounds=(0.0, 1.0), many=_format_many)
def format_reward(s: Prepared, _p: object) -> float:
    """1 if the completion is ``<think>…</think>`` then ``<answer>…</answer>`` (whitespace
    between, nothing else) and the answer parses in the task's dialect (boxes for box
    solutions, a non-empty label for classification) with no inverted box; else 0."""
    if not think_answer_layout(s.completion):
        return 0.0
    ans = s.answer
    if isinstance(ans, BoxAnswer):
        return 1.0 if ans.inverted == 0 else 0.0
    return 1.0 if isinstance(ans, LabelAnswer) else 0.0


class OverlapParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    offset: float = Field(
        default=0.0, ge=-10, le=10, description="added to the value (Visual-RFT LISA: GIoU + 1)"
    )
    power: float = Field(
        default=1.0, ge=1.0, le=4.0, description="IoU raised to this power (Perception-R1: IoU²)"
    )


def _first_box_overlap(s: Prepared, generalised: bool) -> float | None:
    """IoU/GIoU of the first predicted box with its best GT box; None when undefined."""
    iou, giou, _ = pair_matrices(s)
    if iou.shape[0] == 0 or iou.shape[1] == 0:
        return None
    return float((giou if generalised else iou)[0].max())


@sample_component(
    "iou", needs="boxes", bounds=lambda p: (p.offset, 1.0 + p.offset), params=OverlapParams
)
def iou_reward(s: Prepared, p: OverlapParams) -> float:
    """Grounding IoU = max_j IoU(p₁, g_j) of the *first* predicted box p₁ (extra boxes are
    ignored — not Visual-RFT LISA's mix of two boxes' corners), raised to ``power``
    (Perception-R1: 2), plus ``offset``. No predicted box: 0 (+offset); no GT box: 1 if no
    box is predicted either, else 0."""
    v = _first_box_overlap(s, generalised=False)
    if v is None:
        v = 1.0 if s.pred.shape[0] == 0 and s.truth.boxes.shape[0] == 0 else 0.0  # type: ignore[union-attr]
    return (v**p.power if p.power != 1.0 else v) + p.offset


@sample_component(
    "giou", needs="boxes", bounds=lambda p: (p.offset - 1.0, 1.0 + p.offset), params=OverlapParams
)
def giou_reward(s: Prepared, p: OverlapParams) -> float:
    """Grounding GIoU = max_j GIoU(p₁, g_j) ∈ [−1, 1] of the first predicted box, plus
    ``offset`` (``offset=1`` gives Visual-RFT LISA's GIoU + 1 ∈ [0, 2]). No predicted box: −1
    (+offset); no GT box: 1 if no box is predicted either, else −1."""
    v = _first_box_overlap(s, generalised=True)
    if v is None:
        v = 1.0 if s.pred.shape[0] == 0 and s.truth.boxes.shape[0] == 0 else -1.0  # type: ignore[union-attr]
    return v + p.offset


class MatchParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tau: float = Field(default=0.5, gt=0.0, le=1.0, description="IoU ≥ tau makes a true positive")
    l1_weight: float = Field(
        default=5.0, ge=0.0, le=1e6, description="λ_L1 (boxes normalised by image size)"
    )
    giou_weight: float = Field(default=2.0, ge=0.0, le=1e6, description="λ_giou on (1 − GIoU)")
    cls_weight: float = Field(default=1.0, ge=0.0, le=1e6, description="λ_cls per label mismatch")
    labels: Literal["auto", "ignore"] = Field(
        default="auto",
        description="auto: labels must agree when both GT and answer carry labels; ignore: never",
    )


def exact_pairs(s: Prepared, rows: list[int] | None = None) -> ExactIoU:
    """``exact(i, j)``: the exact IoU of prediction i (``rows[i]`` of the answer when given)
    and GT box j, from the decimals the completion and the solution wrote (threshold and tie
    decisions near the boundary, ``matching.NEAR``)."""
    ans = s.answer
    assert isinstance(ans, BoxAnswer) and s.truth.boxes is not None
    frame, gt = s.truth.frame, s.truth.boxes

    def exact(i: int, j: int) -> Fraction:
        k = i if rows is None else rows[i]
        return exact_iou(exact_pred_box(ans.rows[k], frame), exact_gt_box(gt[j].tolist()))

    return exact


def matched(s: Prepared, p: MatchParams) -> Match:
    """Hungarian matching of the sample, computed once per parameter set and cached."""
    key = ("hungarian", p.tau, p.l1_weight, p.giou_weight, p.cls_weight, p.labels)
    got = s.cache.get(key)
    if got is None:
        ans = s.answer
        assert isinstance(ans, BoxAnswer) and s.truth.boxes is not None
        mismatch = None
        if p.labels == "auto":
            mismatch = label_mismatch(ans.labels, s.truth.labels)
        iou, giou, l1 = pair_matrices(s)
        got = hungarian_on(
            iou,
            giou,
            l1,
            tau=p.tau,
            l1_weight=p.l1_weight,
            giou_weight=p.giou_weight,
            cls_weight=p.cls_weight,
            mismatch=mismatch,
            cost=cost_of(s, p.l1_weight, p.giou_weight),
            exact=exact_pairs(s),
        )
        s.cache[key] = got
    return got


def _fm_key(p: MatchParams) -> tuple:
    return ("f1_miou", p.tau, p.l1_weight, p.giou_weight, p.cls_weight, p.labels)


def f1_miou_many(items: list[Prepared], p: MatchParams) -> list[tuple[float, float]]:
    """``(f1, miou)`` of every sample, the Hungarian matchings of a shape bucket solved in one
    loop and their TP decisions and sums taken on ``(S, K)`` arrays; bit-identical to
    :func:`matched` + :func:`f1_score` / :func:`mean_iou` per sample (same cost matrices, same
    ``linear_sum_assignment`` calls, same exact rule near τ, ``math.fsum`` sums)."""
    key = _fm_key(p)
    ckey = cost_key(p.l1_weight, p.giou_weight)
    groups: dict[int, tuple[Bucket, list[tuple[Prepared, int]]]] = {}
    for s in items:
        if key in s.cache:
            continue
        got = s.cache.get(BUCKET)
        ans = s.answer
        labelled = (
            p.labels == "auto"
            and s.truth.labels is not None
            and isinstance(ans, BoxAnswer)
            and ans.labels is not None
        )
        if got is None or labelled or ckey not in got[0].keys:
            m = matched(s, p)
            s.cache[key] = (f1_score(m), mean_iou(m))
            continue
        groups.setdefault(id(got[0]), (got[0], []))[1].append((s, got[1]))
    tau_exact = Fraction(repr(p.tau))
    for bucket, members in groups.values():
        idx = np.array([j for _, j in members])
        k_cost = 3 + bucket.keys.index(ckey)
        iou, cost = bucket.blocks[idx, 0], bucket.blocks[idx, k_cost]
        n_s, n, m = iou.shape
        k = min(n, m)
        rows = np.empty((n_s, k), dtype=np.intp)
        cols = np.empty((n_s, k), dtype=np.intp)
        for t in range(n_s):
            rows[t], cols[t] = linear_sum_assignment(cost[t])
        pair = iou[np.arange(n_s)[:, None], rows, cols]
        tp = pair >= p.tau
        near = np.abs(pair - p.tau) <= NEAR
        if near.any():
            for t, q in np.argwhere(near).tolist():
                e = exact_pairs(members[t][0])(int(rows[t, q]), int(cols[t, q]))
                tp[t, q] = e >= tau_exact
        n_tp = tp.sum(axis=1).tolist()
        hits = np.where(tp, pair, 0.0).tolist()
        denom, top = n + m, max(n, m)
        for (s, _), c, h in zip(members, n_tp, hits, strict=True):
            s.cache[key] = (2.0 * c / denom if c else 0.0, math.fsum(h) / top)
    return [s.cache[key] for s in items]


@sample_component(
    "f1",
    needs="boxes",
    bounds=(0.0, 1.0),
    params=MatchParams,
    many=lambda items, p: [v[0] for v in f1_miou_many(items, p)],
)
def f1_reward(s: Prepared, p: MatchParams) -> float:
    """F1 of a Hungarian matching (DiG): P = TP/N, R = TP/M, F1 = 2PR/(P+R) (0 when TP = 0);
    M = N = 0 → 1; exactly one of them 0 → 0. TP: matched pair with IoU ≥ τ (and same label
    where labels exist). Cost λ_L1·L1 + λ_giou·(1 − GIoU) + λ_cls·[label mismatch]."""
    return f1_score(matched(s, p))


@sample_component(
    "miou",
    needs="boxes",
    bounds=(0.0, 1.0),
    params=MatchParams,
    many=lambda items, p: [v[1] for v in f1_miou_many(items, p)],
)
def miou_reward(s: Prepared, p: MatchParams) -> float:
    """Mean IoU (DiG): Σ IoU over true-positive pairs of the Hungarian matching / max(M, N);
    M = N = 0 → 1; exactly one of them 0 → 0. Same matching and TP rule as ``f1``."""
    return mean_iou(matched(s, p))


@sample_component("accuracy", needs="label", bounds=(0.0, 1.0))
def accuracy_reward(s: Prepared, _p: object) -> float:
    """Classification: 1 when the answer equals the label or one of its synonyms after
    :func:`~services.reward.scoring.matching.clean_label` (surrounding quotes and trailing
    punctuation stripped: ``"Sunflower."``, ``'sunflower!'``) and normalisation (lower case;
    whitespace, ``_`` and ``-`` removed), else 0. Exact match, not Visual-RFT's substring
    test; an empty answer never matches (Visual-RFT gives it 1)."""
    ans, sol = s.answer, s.truth.solution
    assert isinstance(ans, LabelAnswer) and isinstance(sol, LabelSolution)
    got = normalise(clean_label(ans.text))
    if not got:
        return 0.0
    return 1.0 if any(got == normalise(clean_label(t)) for t in (sol.label, *sol.synonyms)) else 0.0


def _virft(s: Prepared) -> tuple[list[float], list[bool], list[float]] | None:
    """Visual-RFT matching after exact-duplicate removal: (ious, matched, confidences) per kept
    prediction; None when a prediction lacks a confidence (Visual-RFT's sort fails → 0)."""
    got = s.cache.get("virft")
    if got is None:
        ans = s.answer
        assert isinstance(ans, BoxAnswer) and s.truth.boxes is not None
        n = ans.n
        if n and (ans.confidences is None or any(c is None for c in ans.confidences)):
            s.cache["virft"] = got = ()
            return None
        seen: set[tuple[float, ...]] = set()
        keep: list[int] = []
        for i, row in enumerate(ans.rows):
            key = tuple(row)
            if key not in seen:
                seen.add(key)
                keep.append(i)
        conf = [min(1.0, max(0.0, float(ans.confidences[i]))) for i in keep] if n else []  # type: ignore[index,arg-type]
        ious, hit = greedy_by_confidence(pair_matrices(s)[0][keep], conf, exact_pairs(s, keep))
        got = (ious, hit, conf)
        s.cache["virft"] = got
    return got or None


VIRFT_PARSE = frozenset({"virft_brackets"})


@sample_component("virft_iou", needs="boxes", bounds=(0.0, 1.0), parse=VIRFT_PARSE)
def virft_iou_reward(s: Prepared, _p: object) -> float:
    """Visual-RFT ``accuracy_reward_iou`` without the math_verify shortcut:
    min(1, Σ IoU of matched predictions / max(M, N)) after exact-duplicate removal and greedy
    confidence-ordered matching (IoU > 0.5 strict, decided exactly; equal IoUs: the first GT).
    M = N = 0 → 1 (Visual-RFT: 0); a missing confidence → 0 (as Visual-RFT). Parses with
    Visual-RFT's ``[[`` → ``[`` / ``]]`` → ``]`` repair (``virft_brackets``)."""
    got = _virft(s)
    if got is None:
        return 0.0
    ious, _hit, _conf = got
    m, n = s.truth.boxes.shape[0], len(ious)  # type: ignore[union-attr]
    if m == 0 and n == 0:
        return 1.0
    return min(1.0, sum(ious) / max(m, n))


@sample_component("virft_confidence", needs="boxes", bounds=(0.0, 1.0), parse=VIRFT_PARSE)
def virft_confidence_reward(s: Prepared, _p: object) -> float:
    """Visual-RFT ``accuracy_reward_confidence``: mean over predictions (after duplicate
    removal) of c if matched else 1 − c, confidences clipped to [0, 1] (Visual-RFT does not
    validate them). Missed GT boxes do not count (so a lone low-confidence false positive
    scores high — kept for parity). No predictions: 1 if no GT either, else 0."""
    got = _virft(s)
    if got is None:
        return 0.0
    _ious, hit, conf = got
    if not conf:
        return 1.0 if s.truth.boxes.shape[0] == 0 else 0.0  # type: ignore[union-attr]
    return sum(c if h else 1.0 - c for c, h in zip(conf, hit, strict=True)) / len(conf)
