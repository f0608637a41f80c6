"""Prompt pieces shared by the tasks: the R1 reasoning template and answer-format sentences.

The system prompt asks for the DeepSeek-R1 / open-r1 layout that every baseline of this
project trains with (Visual-RFT, VLM-R1, Perception-R1, DiG): reasoning inside
``<think>…</think>``, then the final answer inside ``<answer>…</answer>``. The wording here is
our own; the reward's ``format`` component checks the layout, not the wording.
"""

from __future__ import annotations

from typing import Any, Literal

from schemas.geometry import Frame

SYSTEM_PROMPT = (
    "You are a careful visual assistant. For every request, first reason step by step about "
    "the image(s) inside <think> </think> tags, then give only the final answer inside "
    "<answer> </answer> tags, like this: <think> reasoning </think> <answer> answer </answer>"
)

BoxDialect = Literal["qwen25", "virft"]
"""How a box answer is written: Qwen2.5-VL JSON (``{"bbox_2d": [...]}``) or Visual-RFT
(``{"Position": [...], "Confidence": c}``)."""


def coordinate_sentence(frame: Frame) -> str:
    """One sentence telling the model in which frame to write box coordinates."""
    if frame.coords == "pixel":
        if frame.image_size is None:
            return "Write coordinates as integer pixels of the image, [x1, y1, x2, y2]."
        w, h = frame.image_size
        return (
            f"Write coordinates as integer pixels of the image ({w} wide, {h} high), "
            "[x1, y1, x2, y2] with (x1, y1) the top-left and (x2, y2) the bottom-right corner."
        )
    if frame.coords == "norm1000":
        return (
            "Write coordinates as integers from 0 to 1000 relative to the image width and height "
            "(0 = left/top edge, 1000 = right/bottom edge), [x1, y1, x2, y2]."
        )
    if frame.coords == "norm1":
        return (
            "Write coordinates as fractions from 0 to 1 of the image width and height, "
            "[x1, y1, x2, y2]."
        )
    assert frame.input_size is not None
    w, h = frame.input_size
    return f"Write coordinates as integer pixels of the {w}×{h} input image, [x1, y1, x2, y2]."


def box_list_example(dialect: BoxDialect, label: str | None = None) -> str:
    """An example answer body listing boxes in the given dialect."""
    if dialect == "virft":
        return "[{'Position': [x1, y1, x2, y2], 'Confidence': 0.87}, ...]"
    if label is None:
        return '[{"bbox_2d": [x1, y1, x2, y2]}, ...]'
    return f'[{{"bbox_2d": [x1, y1, x2, y2], "label": "{label}"}}, ...]'


def chat_messages(n_images: int, text: str, system: str = SYSTEM_PROMPT) -> list[dict[str, Any]]:
    """Conversational messages for TRL / chat templates.

    Every ``content`` is a list of typed parts (so Arrow stores one schema): the system turn is
    ``[{"type": "text", ...}]``; the user turn is ``n_images`` ``{"type": "image"}``
    placeholders (filled by TRL from the dataset's ``image``/``images`` column) then the text.
    """
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {
            "role": "user",
            "content": [
                *({"type": "image"} for _ in range(n_images)),
                {"type": "text", "text": text},
            ],
        },
    ]
