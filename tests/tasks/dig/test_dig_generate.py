import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tasks.dig import generate
from tasks.dig.generate import MIN_CHANGED_PIXELS, draw_pair, render_pairs, stage_counts
from tasks.dig.raster import RasterRenderer
from tests.tasks.dig.pixel_truth import changed_mask, pixel_truth_violations


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("dig")
    generate(out, 45, seed=7, split="all", progress=False)
    return out


def _rows(root):
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def _load(root, rel):
    return np.asarray(Image.open(root / rel).convert("RGB"))


def test_boxes_cover_exactly_the_pixel_differences(dataset):
    rows = _rows(dataset)
    assert len(rows) == 45
    for row in rows:
        a, b = _load(dataset, row["image_a"]), _load(dataset, row["image_b"])
        problems = pixel_truth_violations(a, b, row["boxes"], tol=2.0)
        assert not problems, (row["id"], problems)


def test_stage_difference_counts(dataset):
    counts = {"single": set(), "dual": set(), "mixed": set()}
    for row in _rows(dataset):
        counts[row["stage"]].add(len(row["boxes"]))
        assert len(row["differences"]) == len(row["boxes"])
    assert counts["single"] == {1}
    assert counts["dual"] == {2}
    assert counts["mixed"] <= {1, 2, 3, 4, 5} and len(counts["mixed"]) >= 2


def test_manifest_records_image_hashes_and_version(dataset):
    rows = _rows(dataset)
    for row in rows[:5]:
        assert (
            hashlib.sha256((dataset / row["image_b"]).read_bytes()).hexdigest() == row["sha256_b"]
        )
    info = json.loads((dataset / "dataset.json").read_text())
    manifest_hash = hashlib.sha256((dataset / "manifest.jsonl").read_bytes()).hexdigest()
    assert info["version"] == manifest_hash
    assert info["counts"] == {"single": 15, "dual": 15, "mixed": 15}


def test_same_seed_same_bytes_and_pairs_do_not_depend_on_n(tmp_path, dataset):
    generate(tmp_path / "again", 45, seed=7, split="all", progress=False)
    for name in ("manifest.jsonl", "dataset.json"):
        assert (tmp_path / "again" / name).read_bytes() == (dataset / name).read_bytes()
    generate(tmp_path / "small", 6, seed=7, split="single", progress=False)
    small = _rows(tmp_path / "small")
    big = {r["id"]: r for r in _rows(dataset)}
    for row in small:  # single-000000..5 are the same pairs in both
        assert row["sha256_a"] == big[row["id"]]["sha256_a"]
        assert row["sha256_b"] == big[row["id"]]["sha256_b"]


def test_other_seed_gives_other_pairs(tmp_path, dataset):
    generate(tmp_path / "other", 3, seed=8, split="single", progress=False)
    other = _rows(tmp_path / "other")
    base = {r["id"]: r for r in _rows(dataset)}
    assert all(r["sha256_a"] != base[r["id"]]["sha256_a"] for r in other)


def test_stage_counts_split_n_into_thirds():
    assert stage_counts(10, "all") == {"single": 3, "dual": 3, "mixed": 4}
    assert stage_counts(4800, "all") == {"single": 1600, "dual": 1600, "mixed": 1600}
    assert stage_counts(5, "dual") == {"dual": 5}
    with pytest.raises(ValueError, match="unknown DiG split"):
        stage_counts(5, "triple")


def test_draw_pair_is_a_pure_function_of_its_key():
    a = draw_pair(1, "mixed", 4, 0)
    b = draw_pair(1, "mixed", 4, 0)
    assert a == b
    assert draw_pair(1, "mixed", 4, 1) != a


def test_pixel_truth_check_flags_shrunken_and_spurious_boxes(dataset):
    row = _rows(dataset)[0]
    a, b = _load(dataset, row["image_a"]), _load(dataset, row["image_b"])
    x1, y1, x2, y2 = row["boxes"][0]
    assert pixel_truth_violations(a, b, [[x1 + 5, y1 + 5, x2 - 5, y2 - 5]])
    assert pixel_truth_violations(a, b, [*row["boxes"], [0.0, 0.0, 3.0, 3.0]])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["single", "dual", "mixed"]))
def test_pixel_truth_holds_for_any_seed(seed, stage):
    """Property: the checked renders (not the files) satisfy pixel truth for arbitrary seeds."""
    (pair,) = render_pairs(RasterRenderer(), seed, stage, [0])
    boxes = [list(b) for b in pair.boxes]
    assert not pixel_truth_violations(pair.image_a, pair.image_b, boxes, tol=2.0)
    # each box holds its own difference's changed pixels (at least MIN_CHANGED_PIXELS)
    changed = changed_mask(pair.image_a, pair.image_b)
    for x1, y1, x2, y2 in boxes:
        assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240
        assert changed[int(y1) : int(y2), int(x1) : int(x2)].sum() >= MIN_CHANGED_PIXELS
