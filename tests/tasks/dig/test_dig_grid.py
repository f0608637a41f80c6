"""Cell-aligned DiG scenes (``SceneOptions(grid=g)``): objects on grid cells, boxes = cells."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tasks.dig import generate
from tasks.dig.diff import DIFF_KINDS
from tasks.dig.generate import cell_box, draw_pair, render_pairs
from tasks.dig.raster import RasterRenderer
from tasks.dig.scene import (
    GRID_CELL,
    SceneObject,
    SceneOptions,
    cell_centre,
    cell_of,
    grid_camera,
    sample_scene,
)
from tests.tasks.dig.pixel_truth import changed_mask, pixel_truth_violations


def _cells(g, size):
    """All g² cell boxes by hand: cells are ``size / g`` pixels wide."""
    step = size // g
    return {
        (float(c * step), float(r * step), float((c + 1) * step), float((r + 1) * step))
        for r in range(g)
        for c in range(g)
    }


@pytest.fixture(scope="module", params=[(2, 56), (3, 84)])
def grid_set(request, tmp_path_factory):
    g, size = request.param
    out = tmp_path_factory.mktemp(f"dig-grid{g}")
    scene = SceneOptions(1, 2, ("large",), grid=g)
    generate(out, 30, seed=3, split="single", size=(size, size), progress=False, scene=scene)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return g, size, out, rows


def _load(root, rel):
    return np.asarray(Image.open(root / rel).convert("RGB")).copy()


def test_boxes_are_cell_boxes_of_the_changed_object(grid_set):
    g, size, _, rows = grid_set
    cells = _cells(g, size)
    for row in rows:
        (box,) = row["boxes"]
        assert tuple(box) in cells
        diff = row["differences"][0]
        assert diff["kind"] != "move"
        # the changed object stands at its cell's centre (as recorded in the manifest)
        x, y = diff["object"]["x"], diff["object"]["y"]
        col, r = int(box[0]) // (size // g), int(box[1]) // (size // g)
        assert np.allclose((x, y), cell_centre(g, r, col))


def test_pixel_truth_without_tolerance(grid_set):
    """Every changed pixel lies in its cell box (tol 0) and the cell holds changed pixels."""
    _, _, root, rows = grid_set
    for row in rows:
        a, b = _load(root, row["image_a"]), _load(root, row["image_b"])
        assert not pixel_truth_violations(a, b, row["boxes"], tol=0.0), row["id"]


def test_other_cells_are_bit_identical(grid_set):
    _, _, root, rows = grid_set
    for row in rows[:10]:
        a, b = _load(root, row["image_a"]), _load(root, row["image_b"])
        x1, y1, x2, y2 = (int(v) for v in row["boxes"][0])
        a[y1:y2, x1:x2] = 0
        b[y1:y2, x1:x2] = 0
        assert not changed_mask(a, b).any()


def test_grid_camera_maps_cell_centres_to_pixel_cell_centres():
    for g, size in ((2, 56), (3, 84), (4, 112)):
        cam = grid_camera(g, size, size)
        step = size / g
        for r in range(g):
            for c in range(g):
                x, y = cell_centre(g, r, c)
                uv, _ = cam.project(np.array([[x, y, 0.0]]))
                assert np.allclose(uv[0], ((c + 0.5) * step, (r + 0.5) * step), atol=1e-3)
        # the grid fills the image: the ground corner (−g·cell/2, +g·cell/2) is pixel (0, 0)
        uv, _ = cam.project(np.array([[-g * GRID_CELL / 2, g * GRID_CELL / 2, 0.0]]))
        assert np.allclose(uv[0], (0.0, 0.0), atol=1e-3)


def test_cell_of_inverts_cell_centre():
    for g in (1, 2, 3, 5):
        for r in range(g):
            for c in range(g):
                x, y = cell_centre(g, r, c)
                obj = SceneObject(0, "cube", "red", "rubber", "large", x, y)
                assert cell_of(g, obj) == (r, c)


def test_cell_box_splits_the_image():
    assert cell_box(2, 1, 0, (56, 56)) == (0.0, 28.0, 28.0, 56.0)
    assert cell_box(3, 2, 2, (84, 84)) == (56.0, 56.0, 84.0, 84.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_grid_scenes_use_distinct_cells(seed, g):
    n_max = min(4, g * g)
    scene = sample_scene(np.random.default_rng(seed), SceneOptions(1, n_max, grid=g))
    cells = [cell_of(g, o) for o in scene.objects]
    assert 1 <= len(cells) <= n_max
    assert len(set(cells)) == len(cells)
    for (r, c), o in zip(cells, scene.objects, strict=True):
        assert 0 <= r < g and 0 <= c < g
        assert np.allclose((o.x, o.y), cell_centre(g, r, c))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_kinds_option_limits_the_differences(seed):
    scene = SceneOptions(1, 2, ("large",), grid=2, kinds=("color", "add"))
    (pair,) = render_pairs(
        RasterRenderer((56, 56), camera=grid_camera(2, 56, 56)), seed, "single", [0], scene=scene
    )
    assert pair.spec.differences[0].kind in ("color", "add")
    assert tuple(pair.boxes[0]) in _cells(2, 56)


def test_defaults_are_unchanged():
    assert SceneOptions().grid == 0
    assert SceneOptions().difference_kinds == DIFF_KINDS
    assert "move" not in SceneOptions(grid=3).difference_kinds
    # free placement draws the same pairs as before the option existed (kinds from all 7)
    assert draw_pair(0, "single", 0, 0) == draw_pair(0, "single", 0, 0, SceneOptions())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": -1}, "grid must be >= 0"),
        ({"n_min": 1, "n_max": 5, "grid": 2}, "do not fit"),
        ({"grid": 2, "n_max": 4, "kinds": ("move",)}, "leaves its cell"),
        ({"kinds": ("colour",)}, "non-empty subset"),
        ({"kinds": ()}, "non-empty subset"),
    ],
)
def test_bad_options_say_what_to_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SceneOptions(**kwargs)


def test_grid_needs_square_raster_images(tmp_path):
    scene = SceneOptions(1, 2, grid=2)
    with pytest.raises(ValueError, match="square"):
        generate(tmp_path, 1, size=(56, 42), split="single", scene=scene, progress=False)
    with pytest.raises(ValueError, match="raster"):
        generate(
            tmp_path,
            1,
            size=(56, 56),
            split="single",
            scene=scene,
            progress=False,
            renderer="blender",
        )
