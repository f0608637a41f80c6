"""The bpy renderer: same pixel-truth and determinism checks as the raster renderer.

Runs when bpy is importable here or ``PRL_BLENDER_PYTHON`` names an interpreter that has it
(``make blender`` builds one); skipped otherwise.
"""

import json

import numpy as np
import pytest
from PIL import Image

from tasks.dig import generate
from tasks.dig.blender import blender_available
from tests.tasks.dig.pixel_truth import pixel_truth_violations

AVAILABLE, WHY = blender_available()
pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(not AVAILABLE, reason=f"blender renderer unavailable: {WHY}"),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("dig-bpy")
    generate(out, 6, renderer="blender", seed=11, split="all", progress=False)
    return out


def _rows(root):
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def test_blender_boxes_cover_exactly_the_pixel_differences(dataset):
    for row in _rows(dataset):
        a = np.asarray(Image.open(dataset / row["image_a"]).convert("RGB"))
        b = np.asarray(Image.open(dataset / row["image_b"]).convert("RGB"))
        assert a.shape == (240, 320, 3)
        problems = pixel_truth_violations(a, b, row["boxes"], tol=2.0)
        assert not problems, (row["id"], problems)


def test_blender_same_seed_same_bytes(dataset, tmp_path):
    generate(tmp_path, 2, renderer="blender", seed=11, split="single", progress=False)
    base = {r["id"]: r for r in _rows(dataset)}
    for row in _rows(tmp_path):
        assert row["sha256_a"] == base[row["id"]]["sha256_a"]
        assert row["sha256_b"] == base[row["id"]]["sha256_b"]
        assert row["boxes"] == base[row["id"]]["boxes"]
