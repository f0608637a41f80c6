"""Named reward specs (``GET /v1/rewards``), each saying what it reproduces and which peer
bug it deliberately does not (docs/rewards.md, "Presets").

Frames are per sample, not per preset: Visual-RFT and Qwen2-VL answers are ``norm1000``,
VLM-R1 / Qwen2.5-VL answers ``input`` (resized-input pixels).
"""

from __future__ import annotations

from schemas.reward import AggregateRef, ComponentRef, RewardSpec
from services.reward.scoring.base import Preset, presets

# DEVA's alignment reward: services/reward/scoring/alignment.py registers the "alignment"
# batch component (a built-in of the components registry); every deva_* preset
# below includes it with its default parameters (a=1, b=0, c=2, v_min=0.2: r_v ∈ [2, 25];
# floor="credit", floor_credit=0.5: the floor is scaled to r̂ = 0.5, the band linearly onto
# [0.5, 1]) and weight DEVA_ALIGNMENT_WEIGHT in the harmonic mean. With n task/format
# components at 1, a floor alignment costs a perfect answer 1 − (n + w)/(n + w/s₀) =
# w(1/s₀ − 1)/(n + w/s₀): 10 % for n = 2, 7 % for n = 3 — the task decides the reward and
# alignment shapes it (docs/rewards.md, "DEVA aggregation"; tests: test_deva_presets.py).
DEVA_ALIGNMENT_WEIGHT = 0.25
DEVA_EXTRA: list[ComponentRef] = [ComponentRef(name="alignment", weight=DEVA_ALIGNMENT_WEIGHT)]
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


# Differences every preset with our ``format`` component shares.
FORMAT_DEVIATION = (
    "format also requires the answer to parse in the task's dialect (the peers' regex checks "
    "only the tags); whitespace around the completion is accepted (the peers' fullmatch "
    "rejects it); a second </think> or answer block is refused (the peers' regex accepts "
    "it by backtracking)."
)
BOX_DEVIATION = (
    "The answer is the last <answer> block, across lines; coordinates up to 10 % past the "
    "frame's range are clipped to the image, further out is bad_frame (reward 0); IoU "
    "thresholds are decided in exact arithmetic on the written decimals."
)


_add(
    "virft_detection",
    _spec("virft_iou", "virft_confidence", "format"),
    "Visual-RFT detection (grpo.py): accuracy_iou + accuracy_confidence + format, unweighted "
    "sum ∈ [0, 3]; exact-duplicate removal, greedy confidence-ordered matching (stable order; "
    "each prediction takes the free GT of highest IoU, the first one on equal IoUs), IoU > 0.5 "
    "strict — decided exactly, as Visual-RFT's integer 0–1000 arithmetic does; its 'fix "
    "format' step ([[ → [, ]] → ]) before parsing; answers in norm1000.",
    "No math_verify shortcut (it gives 1.0 whenever the first box's y1 matches); the answer is "
    "the last <answer> block across lines (Visual-RFT zeroes multi-line answers); no repair of "
    "truncated JSON; 0 GT and 0 predictions score 1 (Visual-RFT 0); confidences are clipped "
    "to [0, 1]. " + FORMAT_DEVIATION + " " + BOX_DEVIATION,
)
_add(
    "virft_classification",
    _spec("accuracy", "format"),
    "Visual-RFT classification (grpo_classification.py): accuracy + format ∈ [0, 2]; like "
    "Visual-RFT, case, spaces and _ are ignored.",
    "Exact match after normalisation instead of substring-either-way; the normalisation also "
    "drops '-' and all whitespace, strips surrounding quotes and trailing punctuation "
    '("Sunflower." matches sunflower) and accepts the solution\'s synonyms; an empty answer '
    "gets 0 (Visual-RFT: 1); the class name is never searched in the thinking; no math_verify "
    "shortcut. " + FORMAT_DEVIATION,
)
_add(
    "virft_lisa",
    _spec(ComponentRef(name="giou", params={"offset": 1.0}), "format"),
    "Visual-RFT LISA grounding (grpo_lisa.py): (GIoU + 1) + format ∈ [0, 3]; answers "
    "(x1,y1),(x2,y2) in norm1000.",
    "With several boxes the first box is used with its own corners (Visual-RFT pairs the "
    "first box's top-left with the second box's top-left); no exact-string override; "
    "decimal and negative numbers are read (Visual-RFT: non-negative integers only); an "
    "answer written as a JSON-looking list [(x1,y1),(x2,y2)] is bad_json (Visual-RFT's regex "
    "finds the pairs inside it). " + FORMAT_DEVIATION + " " + BOX_DEVIATION,
)
_add(
    "vlmr1_rec",
    _spec("iou", "format"),
    "VLM-R1 REC (qwen_module.py iou_reward + format): continuous IoU + format ∈ [0, 2]; "
    "answers in resized-input pixels (frame 'input').",
    "The input→original rescale comes from an explicit frame; float coordinates are accepted; "
    "no 1-pixel overlap quirk; the format needs <think> then <answer> and nothing else (VLM-R1 "
    "searches for a JSON-looking box anywhere). " + FORMAT_DEVIATION + " " + BOX_DEVIATION,
)
_add(
    "pr1_grounding",
    _spec(ComponentRef(name="iou", params={"power": 2.0}), "qwen_box_format"),
    "Perception-R1 grounding (PR1 rewards.py pr1_grounding + pr1_grounding_format): IoU² of "
    "the box, continuous, plus the format ∈ [0, 2]; answers in Qwen2-VL box tokens "
    "<|object_ref_start|>…<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|> or "
    "[x1,y1,x2,y2] / (x1,y1,x2,y2), read from the whole completion when it has no <answer> "
    "block; <|endoftext|> ignored; frame norm1000.",
    "The format check is the layout its pattern intends (PR1's unescaped '|' makes it 1 for "
    "any text starting with '<'); numbers are read in the declared frame — PR1 multiplies "
    "plain (x,y),(x,y) answers without <|box_start|> by 1000 as if they were 0–1; no box "
    "found is a parse error (PR1 scores [0,0,0,0]); a zero-area union gives IoU 0 (PR1 "
    "raises ZeroDivisionError); no LOG_DIR crash. " + BOX_DEVIATION,
)
_add(
    "vision_reasoner",
    _spec("vr_format", "vr_accuracy", "non_repeat"),
    "VisionReasoner (Seg-Zero vision_reasoner.py): format (think layout 1 + per item 1 for "
    "bbox_2d and 1 for point_2d, averaged) + accuracy (Hungarian on the sum of three binary "
    "criteria: IoU > 0.5 with +1-pixel areas, mean |Δ box| < 10, point distance < 30 with the "
    "point inside its box; Σ / max(N, M)) + non-repeat (0 when ≥ 2 sentences repeat) ∈ [0, 7]. "
    'Answers [{"bbox_2d": [...], "point_2d": [x, y]}]; GT points in solution.points; '
    "thresholds in the completion's frame units (VisionReasoner: pixels of its 840×840 input, "
    "frame 'input').",
    "A prediction without point_2d fails only the point criterion (VisionReasoner: KeyError, "
    "accuracy 0 for the whole answer); an answer that does not parse scores 0 everywhere "
    "(VisionReasoner keeps the think-layout 1 and non-repeat 1); 0 GT and 0 predictions give "
    "accuracy 3 and format layout + 2 (VisionReasoner: 0, a division by zero); threshold "
    "decisions exact. " + FORMAT_DEVIATION + " " + BOX_DEVIATION,
)
_VLMR1_OD = (
    "VLM-R1 detection (grpo_jsonl.py, accu_reward_method {method}): COCO AP of one image with "
    "every prediction scored 1.0 (list order ranks them), predictions with a label that is "
    "not a GT label dropped, AP averaged over the GT labels{what} + format ∈ [0, 2]; both lists "
    'empty → 1, one empty → 0; answers [{{"bbox_2d": [...], "label": ...}}] (a ```json '
    "fence is accepted) in resized-input pixels (frame 'input')."
)
_VLMR1_OD_DEV = (
    "No GT-None pass: an answer without parsable boxes is a parse error (VLM-R1 gives 1.0 to "
    "any text without a json block when the GT is None); IoU ≥ t decided exactly for "
    "t = 0.50, 0.55, …, 0.95 (pycocotools compares with linspace floats such as "
    "0.6000000000000001); labels compare after normalisation; boxes are read from the last "
    "<answer> block (its last json fence when it has one, else the bare JSON). "
    + FORMAT_DEVIATION
    + " "
    + BOX_DEVIATION
)
_add(
    "vlmr1_detection",
    _spec("od_ap", "format"),
    _VLMR1_OD.format(method="od_ap", what=" and IoU thresholds 0.50:0.05:0.95"),
    _VLMR1_OD_DEV,
)
_add(
    "vlmr1_detection_ap50",
    _spec(ComponentRef(name="od_ap", params={"iou_thresholds": "0.5"}), "format"),
    _VLMR1_OD.format(method="od_ap50", what=" at IoU 0.5"),
    _VLMR1_OD_DEV,
)
_add(
    "vlmr1_detection_length",
    _spec(ComponentRef(name="od_ap", params={"length_factor": True}), "format"),
    _VLMR1_OD.format(
        method="odLength",
        what=" and IoU thresholds 0.50:0.05:0.95, times min(1, #GT / #predictions)",
    ),
    _VLMR1_OD_DEV,
)
_add(
    "vlmr1_detection_weighted_sum",
    _spec("weighted_sum", "format"),
    "VLM-R1 detection, accu_reward_method weighted_sum (detection_score): greedy global "
    "matching on IoU ≥ 0.5 (highest pair first), 0.7·position + 0.3·completeness (label "
    "weight 0) + format ∈ [0, 2]; GT empty → 1 only for no predictions.",
    "A matched prediction without a label counts as a label mismatch (VLM-R1 raises "
    "UnboundLocalError and the training step crashes); no GT-None text pass (an answer must "
    "parse; [] is 'no objects'); IoU without VLM-R1's 1-pixel overlap quirk (overlaps of "
    "≤ 1 px counted as 0 there); labels compare after normalisation (VLM-R1: lower case); "
    "threshold decided exactly. " + FORMAT_DEVIATION + " " + BOX_DEVIATION,
)
_add(
    "r1v_accuracy",
    _spec("exact_answer", "format"),
    "R1-V (grpo.py): accuracy = the stripped <answer> equals the solution exactly, plus the "
    "think/answer format ∈ [0, 2]; counting answers compare as numbers.",
    "math_verify is replaced by numeric equality of answers that both read as numbers "
    "('3' = '3.0'; math_verify also accepts LaTeX and expressions); the answer is the last "
    "<answer> block across lines (R1-V: the first, single-line); synonyms are accepted. "
    + FORMAT_DEVIATION,
)
_add(
    "dig",
    _spec("format", "f1", "miou"),
    "DiG (CVPR 2026): format + F1 + mean IoU after Hungarian matching, unweighted sum ∈ [0, 3]. "
    "No public code; follows the paper text, with the matching of the f1 and miou components.",
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
