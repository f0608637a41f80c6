"""DEVA masks: grid/box → pixels; a kept region embeds like that region on a black canvas."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from schemas.reward import PatchMask
from services.embedding.masking import boxes_to_pixels, grid_keep, grid_to_pixels, mask_image


def _img(w: int = 40, h: int = 30, seed: int = 1) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(1, 255, (h, w, 3), dtype=np.uint8))


def test_grid_upsamples_proportionally() -> None:
    keep = np.array([[True, False], [False, True]])
    px = grid_to_pixels(keep, (4, 6))  # W=4, H=6: each cell 2 wide, 3 tall
    expected = np.array([[1, 1, 0, 0]] * 3 + [[0, 0, 1, 1]] * 3, dtype=bool)
    assert np.array_equal(px, expected)


def test_uneven_grid_covers_every_pixel_once() -> None:
    keep = np.arange(12).reshape(3, 4) % 2 == 0
    px = grid_to_pixels(keep, (10, 7))
    assert px.shape == (7, 10)
    # pixel (y, x) → cell (⌊3y/7⌋, ⌊4x/10⌋)
    for y in range(7):
        for x in range(10):
            assert px[y, x] == keep[(3 * y) // 7, (4 * x) // 10]


def test_threshold_and_binary_grids() -> None:
    assert grid_keep(PatchMask(grid=[[0.2, 0.9]], threshold=0.5)).tolist() == [[False, True]]
    assert grid_keep(PatchMask(grid=[[0.2, 0.9]], threshold=0.1)).tolist() == [[True, True]]
    assert grid_keep(PatchMask(grid=[[0, 1], [1, 0]])).tolist() == [[False, True], [True, False]]


def test_boxes_union_and_clipping() -> None:
    keep = boxes_to_pixels([(1, 1, 3, 2), (2.5, 0, 10, 0.5)], (5, 3))
    expected = np.zeros((3, 5), dtype=bool)
    expected[1:2, 1:3] = True
    expected[0:1, 2:5] = True  # ⌊2.5⌋ = 2 … ⌈10⌉ clipped to 5
    assert np.array_equal(keep, expected)
    assert not boxes_to_pixels([], (5, 3)).any()


def _black_canvas_with(img: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    canvas = Image.new("RGB", img.size, (0, 0, 0))
    canvas.paste(img.crop(box), box[:2])
    return canvas


def test_box_mask_equals_region_on_black_canvas_pixelwise() -> None:
    img, box = _img(), (5, 7, 25, 20)
    masked = mask_image(img, mask_boxes=[box])
    assert np.array_equal(np.asarray(masked), np.asarray(_black_canvas_with(img, box)))
    assert mask_image(img) is img


def test_grid_mask_equals_region_on_black_canvas_pixelwise() -> None:
    img = _img(40, 30)
    grid = [[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]  # cells 10×10 → keep x 10..30, y 10..20
    masked = mask_image(img, mask=PatchMask(grid=grid))
    assert np.array_equal(np.asarray(masked), np.asarray(_black_canvas_with(img, (10, 10, 30, 20))))


@pytest.mark.parametrize("encoder_name", ["clip_encoder", "siglip_encoder"])
def test_masked_embedding_equals_black_canvas_embedding(
    encoder_name: str, request: pytest.FixtureRequest
) -> None:
    enc = request.getfixturevalue(encoder_name)
    img, box = _img(48, 36), (4, 6, 30, 28)
    a = enc.encode_images([mask_image(img, mask_boxes=[box])])
    b = enc.encode_images([_black_canvas_with(img, box)])
    full = enc.encode_images([img])
    assert np.allclose(a, b, atol=1e-6)
    assert not np.allclose(a, full, atol=1e-3)  # the mask did change what is encoded
