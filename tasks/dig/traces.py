"""Gold completions for SFT on DiG: ``<think>…</think><answer>…</answer>`` from the labels.

Minimal version (the label-exact chain-of-thought templating from the scene diff is written
separately); :func:`sft_completion` keeps its signature.

The answer is the sample's ground-truth boxes in the task's dialect (Qwen2.5-VL JSON,
``[{"bbox_2d": [x1, y1, x2, y2]}, ...]``) written in the sample's frame, so the reward
service reads it back to the ground truth (F1 = mIoU = 1 up to rounding).
"""

from __future__ import annotations

import json

from schemas.geometry import Frame
from schemas.tasks import TaskSample

SHORT_THINK = "I compare the two images object by object."


def to_frame(box: tuple[float, ...], frame: Frame) -> list[float | int]:
    """A pixel box ``[x1, y1, x2, y2]`` written in ``frame`` (integers except for norm1)."""
    if frame.coords == "pixel":
        sx = sy = 1.0
    else:
        assert frame.image_size is not None
        w, h = frame.image_size
        if frame.coords == "norm1000":
            sx, sy = 1000.0 / w, 1000.0 / h
        elif frame.coords == "norm1":
            sx, sy = 1.0 / w, 1.0 / h
        else:
            assert frame.input_size is not None
            sx, sy = frame.input_size[0] / w, frame.input_size[1] / h
    scaled = [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]
    if frame.coords == "norm1":
        return [round(v, 3) for v in scaled]
    return [round(v) for v in scaled]


def answer_text(sample: TaskSample) -> str:
    """The ``<answer>`` body: one ``{"bbox_2d": [...]}`` per ground-truth box."""
    boxes = getattr(sample.solution, "boxes", None)
    if boxes is None:
        raise ValueError(f"sample {sample.id}: SFT completions need a box solution")
    return json.dumps([{"bbox_2d": to_frame(tuple(b), sample.frame)} for b in boxes])


def sft_completion(sample: TaskSample, *, cot: bool = False) -> str:
    """The gold completion of ``sample``; ``cot`` adds a description of each difference."""
    think = SHORT_THINK
    if cot:
        kinds = sample.meta.get("kinds") or []
        n = len(kinds)
        parts = [f"There {'is' if n == 1 else 'are'} {n} difference{'s' if n != 1 else ''}."]
        parts += [f"Difference {i + 1}: {kind}." for i, kind in enumerate(kinds)]
        think = " ".join(parts)
    return f"<think>{think}</think><answer>{answer_text(sample)}</answer>"
