import math

import numpy as np
import pytest

from tasks.dig.raster import RasterRenderer, ellipse_sdf, polygon_sdf
from tasks.dig.render import Footprint, merge_footprints
from tasks.dig.scene import Scene, SceneObject, sample_scene


def _grid(x0, x1, y0, y1):
    px = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    py = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    return px, py


def test_polygon_sdf_of_a_square_matches_hand_values():
    square = np.array([[2.0, 2.0], [8.0, 2.0], [8.0, 8.0], [2.0, 8.0]])
    px, py = _grid(0, 10, 0, 10)
    d = polygon_sdf(square, px, py)
    assert d[4, 4] == pytest.approx(-2.5)  # (4.5, 4.5): 2.5 from the left and top edges
    assert d[6, 6] == pytest.approx(-1.5)  # (6.5, 6.5): 1.5 from the right and bottom edges
    assert d[5, 0] == pytest.approx(1.5)  # (0.5, 5.5): 1.5 left of x = 2
    assert d[2, 2] == pytest.approx(-0.5)  # (2.5, 2.5)


def test_polygon_sdf_sign_agrees_with_brute_force_inside_test():
    rng = np.random.default_rng(0)
    angles = np.sort(rng.uniform(0, 2 * math.pi, 7))
    poly = np.stack([20 + 12 * np.cos(angles), 20 + 9 * np.sin(angles)], axis=1)
    px, py = _grid(0, 40, 0, 40)
    d = polygon_sdf(poly, px, py)
    # brute force: inside a convex CCW/CW polygon ⇔ all edge cross products share a sign
    xs, ys = np.broadcast_arrays(px, py)
    signs = []
    for k in range(len(poly)):
        (x0, y0), (x1, y1) = poly[k], poly[(k + 1) % len(poly)]
        signs.append((x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0))
    signs = np.stack(signs)
    inside = (signs > 0).all(axis=0) | (signs < 0).all(axis=0)
    assert np.array_equal(d < 0, inside)


def test_ellipse_sdf_is_zero_on_the_boundary_and_negative_inside():
    e = (10.0, 10.0, 6.0, 3.0)
    assert ellipse_sdf(e, np.float32(16.0), np.float32(10.0)) == pytest.approx(0.0, abs=1e-5)
    assert ellipse_sdf(e, np.float32(10.0), np.float32(13.0)) == pytest.approx(0.0, abs=1e-5)
    assert ellipse_sdf(e, np.float32(10.0), np.float32(10.5)) < 0
    assert ellipse_sdf(e, np.float32(10.0), np.float32(15.0)) == pytest.approx(2.0, rel=0.05)


def test_footprint_box_uses_pixel_edges():
    fp = Footprint(5, 7, np.array([[False, True], [True, False]]))
    assert fp.box() == (7.0, 5.0, 9.0, 7.0)
    assert Footprint(0, 0, np.zeros((3, 3), bool)).box() is None
    merged = merge_footprints([fp, Footprint(0, 0, np.array([[True]]))])
    assert merged.box() == (0.0, 0.0, 9.0, 7.0)


def test_same_scene_gives_identical_bytes():
    scene = sample_scene(np.random.default_rng(3))
    a = RasterRenderer().render(scene)
    b = RasterRenderer().render(scene)
    assert a.image.dtype == np.uint8 and a.image.shape == (240, 320, 3)
    assert a.image.tobytes() == b.image.tobytes()


def test_footprint_of_unoccluded_object_covers_exactly_its_pixels():
    """With one object, pixels that differ from the empty ground are exactly its footprint."""
    renderer = RasterRenderer()
    ground = renderer.render(Scene(())).image
    for shape in ("cube", "sphere", "cylinder"):
        obj = SceneObject(0, shape, "red", "metal", "large", 0.3, -0.5, rotation=20.0)
        out = renderer.render(Scene((obj,)))
        changed = (out.image != ground).any(axis=2)
        fp = out.footprints[0].full(240, 320)
        assert changed.sum() > 200
        assert not (changed & ~fp).any(), shape  # nothing changes outside the footprint
        # the footprint may include pixels of near-zero coverage that round back to the ground
        x1, y1, x2, y2 = out.footprints[0].box()
        rows, cols = np.nonzero(changed)
        assert cols.min() - x1 <= 2 and x2 - (cols.max() + 1) <= 2
        assert rows.min() - y1 <= 2 and y2 - (rows.max() + 1) <= 2


def test_fully_hidden_object_has_empty_footprint():
    front = SceneObject(0, "cube", "gray", "rubber", "large", 0.0, -1.0)
    hidden = SceneObject(1, "sphere", "red", "rubber", "small", 0.0, -0.05)
    out = RasterRenderer().render(Scene((front, hidden)))
    fp = out.footprints[1]
    visible = 0 if fp.box() is None else int(fp.mask.sum())
    without = RasterRenderer().render(Scene((front,)))
    changed = int((out.image != without.image).any(axis=2).sum())
    assert changed <= visible  # every changed pixel is a visible pixel of the hidden object
