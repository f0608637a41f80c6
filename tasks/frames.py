"""How a task reads the model's coordinates: :class:`schemas.geometry.Frame` per sample.

``coords``: ``pixel`` (Qwen2.5-VL-style prompts asking for image pixels), ``norm1000``
(Qwen2-VL / Visual-RFT), ``norm1``, or ``input`` (pixels of the resized model input; the input
size follows Qwen2-VL/2.5-VL's ``smart_resize``).
"""

from __future__ import annotations

import math

from schemas.geometry import CoordFrame, Frame

QWEN_PATCH_FACTOR = 28
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 1280


def smart_resize(
    width: int,
    height: int,
    *,
    factor: int = QWEN_PATCH_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """Model-input ``(width, height)`` of Qwen2-VL / Qwen2.5-VL's image processor.

    Both sides are rounded to multiples of ``factor``; if the area leaves
    ``[min_pixels, max_pixels]`` both sides are scaled by ``β = √(area/max)`` (floor) or
    ``β = √(min/area)`` (ceil) before rounding, keeping the aspect ratio.
    """
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


def make_frame(
    coords: CoordFrame,
    image_size: tuple[int, int],
    *,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> Frame:
    """The frame of one image ``(width, height)`` for the task's ``coords`` option."""
    if coords == "input":
        input_size = smart_resize(*image_size, min_pixels=min_pixels, max_pixels=max_pixels)
        return Frame(coords="input", image_size=image_size, input_size=input_size)
    return Frame(coords=coords, image_size=image_size)
