import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.dig.scene import MIN_GAP, Camera, SceneObject, fits, sample_scene


def test_camera_projects_target_to_image_centre():
    cam = Camera(width=320, height=240)
    uv, depth = cam.project(np.array([cam.target]))
    assert np.allclose(uv[0], [160.0, 120.0])
    assert math.isclose(depth[0], math.dist(cam.position, cam.target))


def test_camera_axes_right_is_positive_u_and_up_is_negative_v():
    cam = Camera()
    (c, right, up), _ = cam.project(
        np.array([cam.target, np.add(cam.target, (1.0, 0, 0)), np.add(cam.target, (0, 0, 1.0))])
    )
    assert right[0] > c[0] and math.isclose(right[1], c[1], abs_tol=1e-9)
    assert up[1] < c[1]


def test_camera_focal_matches_horizontal_fov():
    cam = Camera(width=320, fov_deg=90.0)
    assert math.isclose(cam.focal, 160.0)


def test_fits_rejects_touching_objects_and_accepts_separated_ones():
    a = SceneObject(0, "sphere", "red", "rubber", "large", 0.0, 0.0)
    near = SceneObject(1, "sphere", "red", "rubber", "large", 1.4 + MIN_GAP / 2, 0.0)
    far = SceneObject(1, "sphere", "red", "rubber", "large", 1.4 + MIN_GAP + 1e-6, 0.0)
    assert not fits(near, [a])
    assert fits(far, [a])
    cube = SceneObject(2, "cube", "red", "rubber", "large", 0.0, 0.0)
    assert math.isclose(cube.bound_radius, 0.7 * math.sqrt(2))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_sampled_scenes_never_intersect(seed):
    scene = sample_scene(np.random.default_rng(seed))
    objs = scene.objects
    assert 1 <= len(objs) <= 8
    for i, a in enumerate(objs):
        assert -3.0 <= a.x <= 3.0 and -3.0 <= a.y <= 3.0
        for b in objs[i + 1 :]:
            assert math.hypot(a.x - b.x, a.y - b.y) >= a.bound_radius + b.bound_radius + MIN_GAP
