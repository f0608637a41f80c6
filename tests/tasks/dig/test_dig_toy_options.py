"""Options of the tiny training setting: the raster ``position`` ground and the short prompt."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.dig import generate
from tasks.dig.raster import RasterRenderer
from tasks.dig.scene import Scene
from tasks.registry import get_task


def test_position_ground_encodes_x_in_the_tint_and_y_in_the_brightness() -> None:
    img = RasterRenderer(size=(112, 112), ground="position").render(Scene(())).image
    red_minus_blue = img[..., 0].astype(float) - img[..., 2].astype(float)
    across = red_minus_blue.mean(axis=0)  # red → blue across the width (uint8 steps)
    assert np.all(np.diff(across) <= 0) and across[0] - across[-1] > 50
    down = img[..., 1].astype(float).mean(axis=1)  # darker → brighter down the image
    assert np.all(np.diff(down) >= 0) and down[-1] - down[0] > 50
    studio = RasterRenderer(size=(112, 112)).render(Scene(())).image
    assert not np.array_equal(img, studio)
    with pytest.raises(ValueError, match="raster ground"):
        RasterRenderer(size=(32, 32), ground="sky")


def test_short_prompt_keeps_frame_and_dialect_and_is_hashed(tmp_path) -> None:
    generate(tmp_path, 3, split="single", size=(112, 84), seed=0, progress=False)
    full = get_task("dig", root=str(tmp_path))
    short = get_task("dig", root=str(tmp_path), prompt="short")
    s_full, s_short = next(full.samples("train")), next(short.samples("train"))
    assert len(s_short.prompt) < len(s_full.prompt) / 4
    assert "112x84" in s_short.prompt and '"bbox_2d"' in s_short.prompt
    assert "<answer>" in short.messages(s_short)[0]["content"][0]["text"]
    assert short.content_hash("train") != full.content_hash("train")
    with pytest.raises(ValueError, match="DiG prompt"):
        get_task("dig", root=str(tmp_path), prompt="tiny")


def test_minimal_prompt_is_a_few_words_with_its_own_system_turn(tmp_path) -> None:
    from tasks.dig.task import MINIMAL_SYSTEM_PROMPT, MINIMAL_USER_PROMPT

    generate(tmp_path, 2, split="single", size=(56, 56), seed=0, progress=False)
    short = get_task("dig", root=str(tmp_path), prompt="short")
    minimal = get_task("dig", root=str(tmp_path), prompt="minimal")
    s_short, s_min = next(short.samples("train")), next(minimal.samples("train"))
    assert s_min.prompt == MINIMAL_USER_PROMPT and len(s_min.prompt) < len(s_short.prompt) / 5
    messages = minimal.messages(s_min)
    assert messages[0]["content"][0]["text"] == MINIMAL_SYSTEM_PROMPT
    assert [p["type"] for p in messages[-1]["content"]] == ["image", "image", "text"]
    assert s_min.solution == s_short.solution and s_min.frame == s_short.frame
    assert minimal.content_hash("train") != short.content_hash("train")
