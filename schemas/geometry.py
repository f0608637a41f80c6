"""Boxes and coordinate frames.

Internally a box is always ``[x1, y1, x2, y2]`` floats in *original-image pixels*. A
completion's numbers are read through an explicit :class:`Frame`; the frame is never guessed
from the size of the numbers (VLMEvalKit and lmms-eval do, and inflate or break scores).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

CoordFrame = Literal["pixel", "input", "norm1000", "norm1"]

Size = tuple[Annotated[int, Field(gt=0, le=1_000_000)], Annotated[int, Field(gt=0, le=1_000_000)]]


def _check_box(v: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if not all(math.isfinite(c) for c in v):
        raise ValueError("box coordinates must be finite numbers (got NaN or infinity)")
    x1, y1, x2, y2 = v
    if x2 < x1 or y2 < y1:
        raise ValueError(f"box must be [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2, got {list(v)}")
    return v


Box = Annotated[tuple[float, float, float, float], AfterValidator(_check_box)]
"""A ground-truth box ``[x1, y1, x2, y2]`` in original-image pixels (finite, not inverted)."""


class Frame(BaseModel):
    """How the *completion's* coordinates are to be read.

    * ``pixel``: original-image pixels (default).
    * ``input``: pixels of the resized model input (Qwen2.5-VL); needs ``image_size`` and
      ``input_size``; x is scaled by ``image_w / input_w`` and y by ``image_h / input_h``.
    * ``norm1000``: integers 0–1000 (Qwen2-VL, Visual-RFT); needs ``image_size``.
    * ``norm1``: fractions 0–1; needs ``image_size``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    coords: CoordFrame = "pixel"
    image_size: Size | None = Field(
        default=None, description="[width, height] of the original image"
    )
    input_size: Size | None = Field(default=None, description="[width, height] of the model input")

    @model_validator(mode="after")
    def _sizes_present(self) -> Frame:
        if self.coords in ("norm1000", "norm1") and self.image_size is None:
            scale = "0–1000" if self.coords == "norm1000" else "0–1"
            raise ValueError(
                f'image_size: required when coords is "{self.coords}" (the completion\'s numbers '
                f"are {scale} and must be mapped to pixels)"
            )
        if self.coords == "input" and (self.image_size is None or self.input_size is None):
            raise ValueError(
                'image_size and input_size: both required when coords is "input" (the completion\'s '
                "numbers are pixels of the resized model input)"
            )
        return self
