import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.dig.diff import DIFF_KINDS, MOVE_RANGE, apply_differences
from tasks.dig.scene import MIN_GAP, sample_scene

ATTRS = ("shape", "color", "material", "size", "x", "y")


def _attrs(obj):
    return {k: getattr(obj, k) for k in ATTRS}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_each_difference_changes_exactly_what_it_says(seed, k):
    rng = np.random.default_rng(seed)
    scene_a = sample_scene(rng)
    out = apply_differences(rng, scene_a, k)
    if out is None:
        return
    scene_b, diffs = out
    assert len(diffs) == k
    assert len({d.uid for d in diffs}) == k  # one difference per object
    a, b = scene_a.by_uid(), scene_b.by_uid()
    changed = {d.uid: d for d in diffs}
    for uid in set(a) | set(b):
        if uid not in changed:  # untouched objects are identical
            assert a[uid] == b[uid]
            continue
        d = changed[uid]
        assert d.kind in DIFF_KINDS
        if d.kind == "add":
            assert uid not in a and uid in b
        elif d.kind == "remove":
            assert uid in a and uid not in b
        else:
            before, after = _attrs(a[uid]), _attrs(b[uid])
            diff_keys = {key for key in ATTRS if before[key] != after[key]}
            if d.kind == "move":
                dist = math.hypot(after["x"] - before["x"], after["y"] - before["y"])
                assert MOVE_RANGE[0] - 1e-9 <= dist <= MOVE_RANGE[1] + 1e-9
                assert diff_keys <= {"x", "y"} and diff_keys
            else:
                assert diff_keys == {d.kind}
    objs = scene_b.objects  # B is still a valid scene
    for i, p in enumerate(objs):
        for q in objs[i + 1 :]:
            assert math.hypot(p.x - q.x, p.y - q.y) >= p.bound_radius + q.bound_radius + MIN_GAP


def test_all_kinds_occur():
    seen = set()
    for seed in range(60):
        rng = np.random.default_rng(seed)
        out = apply_differences(rng, sample_scene(rng), 3)
        if out:
            seen |= {d.kind for d in out[1]}
    assert seen == set(DIFF_KINDS)
