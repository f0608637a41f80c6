"""Typed task samples: what a task loader yields to the trainer and the benchmark runner.

A :class:`TaskSample` is one prompt of one task: its image files, the user text, the ground
truth in original-image pixels (:class:`~schemas.reward.BoxSolution` or
:class:`~schemas.reward.LabelSolution`) and the :class:`~schemas.geometry.Frame` that says how
the *model's* answer coordinates are to be read (``pixel`` for Qwen2.5-VL-style prompts,
``norm1000`` for Qwen2-VL / Visual-RFT-style prompts; it carries ``image_size``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.geometry import Frame
from schemas.reward import BoxSolution, LabelSolution


class TaskSample(BaseModel):
    """One prompt of a task with its ground truth.

    ``images`` are file paths in the order the chat message shows them (DiG: ``[A, B]``; the
    solution's boxes are in pixels of the *last* image). ``query`` is the text the DEVA
    alignment reward embeds (the referring expression, the category name, ...); ``None`` when
    the task has no natural query.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=256)
    images: list[str] = Field(min_length=1)
    prompt: str = Field(min_length=1, description="the user text of the chat message")
    solution: BoxSolution | LabelSolution
    frame: Frame = Field(default_factory=Frame)
    query: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
