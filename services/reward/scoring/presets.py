"""Named reward specs (``GET /v1/rewards``), each saying what it reproduces and which peer
bug it deliberately does not (research/B_rewards.md).

Frames are per sample, not per preset: Visual-RFT and Qwen2-VL answers are ``norm1000``,
VLM-R1 / Qwen2.5-VL answers ``input`` (resized-input pixels).
"""

from __future__ import annotations

from schemas.reward import AggregateRef, ComponentRef, RewardSpec
from services.reward.scoring.base import Preset, components, presets

# DEVA's alignment reward: services/reward/scoring/alignment.py registers the "alignment"
# batch component (the package __init__ imports it before this module); every deva_* preset
# below includes it with its default parameters (a=1, b=0, c=2, v_min=0.2: r_v ∈ [2, 25];
# floor="credit", floor_credit=0.5: the floor is scaled to r̂ = 0.5, the band linearly onto
# [0.5, 1]) and weight DEVA_ALIGNMENT_WEIGHT in the harmonic mean. With n task/format
# components at 1, a floor alignment costs a perfect answer 1 − (n + w)/(n + w/s₀) =
# w(1/s₀ − 1)/(n + w/s₀): 10 % for n = 2, 7 % for n = 3 — the task decides the reward and
# alignment shapes it (docs/rewards.md, "DEVA aggregation"; tests: test_deva_presets.py).
DEVA_ALIGNMENT_WEIGHT = 0.25
DEVA_EXTRA: list[ComponentRef] = (
    [ComponentRef(name="alignment", weight=DEVA_ALIGNMENT_WEIGHT)]
    if "alignment" in components
    else []
)
DEVA_SCALING = (
    " Scaled harmonic mean (DEVA leaves the scale to its supplement): each component is "
    "mapped to [0, 1] by its range; alignment r_v ∈ [c, (a/v_min − b)²] maps its floor c to "
    "0.5 and the band linearly onto [0.5, 1], with weight 0.25 (docs/rewards.md)."
)


def _spec(*names: str | ComponentRef, method: str = "sum") -> RewardSpec:
    refs = [n if isinstance(n, ComponentRef) else ComponentRef(name=n) for n in names]
    return RewardSpec(components=refs, aggregate=AggregateRef(method=method))


def _add(name: str, spec: RewardSpec, reproduces: str, deviations: str = "") -> None:
    presets.register(name)(Preset(name, spec, reproduces, deviations))


_add(
    "virft_detection",
    _spec("virft_iou", "virft_confidence", "format"),
    "Visual-RFT detection (grpo.py): accuracy_iou + accuracy_confidence + format, unweighted "
    "sum ∈ [0, 3]; greedy confidence-ordered matching, IoU > 0.5; answers in norm1000.",
    "No math_verify shortcut (it gives 1.0 whenever the first box's y1 matches); the answer is "
    "the last <answer> block across lines (Visual-RFT zeroes multi-line answers); no repair of "
    "truncated JSON.",
)
_add(
    "virft_classification",
    _spec("accuracy", "format"),
    "Visual-RFT classification (grpo_classification.py): accuracy + format ∈ [0, 2].",
    "Exact match after normalisation instead of substring-either-way; an empty answer gets 0 "
    "(Visual-RFT: 1); the class name is never searched in the thinking.",
)
_add(
    "virft_lisa",
    _spec(ComponentRef(name="giou", params={"offset": 1.0}), "format"),
    "Visual-RFT LISA grounding (grpo_lisa.py): (GIoU + 1) + format ∈ [0, 3]; norm1000.",
    "With several boxes the first box is used with its own corners (Visual-RFT pairs the "
    "first box's top-left with the second box's top-left); no exact-string override.",
)
_add(
    "vlmr1_rec",
    _spec("iou", "format"),
    "VLM-R1 REC (qwen_module.py iou_reward + format): continuous IoU + format ∈ [0, 2]; "
    "answers in resized-input pixels (frame 'input').",
    "The input→original rescale comes from an explicit frame; float coordinates are accepted; "
    "no 1-pixel overlap quirk; the format needs <think> then <answer> and nothing else.",
)
_add(
    "dig",
    _spec("format", "f1", "miou"),
    "DiG (CVPR 2026): format + F1 + mean IoU after Hungarian matching, unweighted sum ∈ [0, 3]. "
    "No public code; follows the paper text and DESIGN.md's matching definition.",
)
_add(
    "deva_detection",
    _spec("virft_iou", "virft_confidence", "format", *DEVA_EXTRA, method="harmonic"),
    "DEVA (CVPR 2026) on Visual-RFT detection: the Visual-RFT components plus alignment, "
    "harmonic aggregation on components scaled to [0, 1]." + DEVA_SCALING,
    "As virft_detection.",
)
_add(
    "deva_grounding",
    _spec("giou", "format", *DEVA_EXTRA, method="harmonic"),
    "DEVA on LISA grounding: GIoU, format and alignment, harmonic aggregation (GIoU scaled "
    "from [−1, 1])." + DEVA_SCALING,
    "As virft_lisa.",
)
_add(
    "deva_classification",
    _spec("accuracy", "format", *DEVA_EXTRA, method="harmonic"),
    "DEVA on Visual-RFT classification: accuracy, format and alignment, harmonic "
    "aggregation." + DEVA_SCALING,
    "As virft_classification.",
)
