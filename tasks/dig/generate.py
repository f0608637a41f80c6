"""The DiG dataset generator: scene pairs, ground-truth boxes, images and a manifest.

Curriculum stages (DiG, CVPR 2026: single → dual → mixed, about 1.6 K pairs each):

* ``single``: exactly one difference; ``dual``: exactly two;
* ``mixed``: K drawn uniformly from 1 … min(5, number of objects).

The prompt never states K. Every pair is drawn from its own random stream
``default_rng([seed, stage, index, attempt])``, so a pair does not depend on ``n``, on the
renderer's batch size, or on the other pairs. A drawn pair is *rejected* (and redrawn with
the next ``attempt``) when a difference changes fewer than :data:`MIN_CHANGED_PIXELS` pixels
inside its own footprint (for example an object hidden behind another) or when two
differences' boxes overlap with IoU > :data:`MAX_BOX_IOU` (a grader could not tell them
apart).

Ground truth of a difference = the box of the union of the changed object's visible
footprints in A and in B (in pixels of image B; both images share the camera): *remove* →
where the object was; *add* → where it is; *move* → one box around old and new place (see
:mod:`tasks.dig.diff`).

Output directory::

    images/<id>_a.png, images/<id>_b.png
    manifest.jsonl     one JSON object per pair (ids, image paths, boxes, differences, hashes)
    dataset.json       {"name": "dig", "version": <sha256 of manifest.jsonl>, ...}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from services.reward.scoring.geometry import iou
from tasks.dig.diff import Difference, apply_differences
from tasks.dig.png import encode_png
from tasks.dig.render import Footprint, Rendered, Renderer, merge_footprints, renderers
from tasks.dig.scene import (
    DEFAULT_SCENE,
    Scene,
    SceneOptions,
    cell_of,
    grid_camera,
    grid_place,
    sample_scene,
)
from tasks.hashing import file_sha256

log = logging.getLogger(__name__)

GENERATOR_VERSION = "dig-gen/2"  # 2: each difference records its whole object
STAGES = ("single", "dual", "mixed")
STAGE_CODES = {"single": 1, "dual": 2, "mixed": 3}
MIN_CHANGED_PIXELS = 12
MAX_BOX_IOU = 0.3
MAX_ATTEMPTS = 200
MANIFEST = "manifest.jsonl"
DATASET_INFO = "dataset.json"

BoxT = tuple[float, float, float, float]


@dataclass(frozen=True)
class PairSpec:
    """A drawn (not yet rendered) pair: scenes A and B and their differences."""

    stage: str
    index: int
    attempt: int
    scene_a: Scene
    scene_b: Scene
    differences: list[Difference]


@dataclass(frozen=True)
class RenderedPair:
    """A pair that passed the checks: images and one GT box per difference."""

    spec: PairSpec
    image_a: np.ndarray
    image_b: np.ndarray
    boxes: list[BoxT]


def stage_k(stage: str, rng: np.random.Generator, n_objects: int) -> int:
    """Number of differences for a curriculum stage."""
    if stage == "single":
        return 1
    if stage == "dual":
        return 2
    if stage == "mixed":
        return int(rng.integers(1, min(5, max(n_objects, 1)) + 1))
    raise ValueError(f"unknown DiG stage {stage!r}; use one of {', '.join(STAGES)}")


def draw_pair(
    seed: int, stage: str, index: int, attempt: int, scene: SceneOptions = DEFAULT_SCENE
) -> PairSpec | None:
    """Scenes A, B and K differences from the pair's own random stream (``None``: no fit)."""
    rng = np.random.default_rng([seed, STAGE_CODES[stage], index, attempt])
    scene_a = sample_scene(rng, scene)
    k = stage_k(stage, rng, len(scene_a.objects))
    placer = None
    if scene.grid:
        grid = scene.grid

        def placer(rng, obj, others):
            return grid_place(rng, obj, others, grid)

    changed = apply_differences(
        rng, scene_a, k, sizes=scene.sizes, kinds=scene.difference_kinds, placer=placer
    )
    if changed is None:
        return None
    scene_b, diffs = changed
    return PairSpec(stage, index, attempt, scene_a, scene_b, diffs)


def difference_footprint(diff: Difference, ra: Rendered, rb: Rendered) -> list[Footprint]:
    """The changed object's visible footprints in A and B (absent ones skipped)."""
    return [r.footprints[diff.uid] for r in (ra, rb) if diff.uid in r.footprints]


def union_box(parts: list[Footprint]) -> BoxT | None:
    """Pixel-edge box of the union of footprints (``None`` when all are empty)."""
    boxes = [b for p in parts if (b := p.box()) is not None]
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def cell_box(grid: int, row: int, col: int, size: tuple[int, int]) -> BoxT:
    """Pixel box of grid cell ``(row, col)`` in an image of ``size = (width, height)``."""
    w, h = size
    return (
        float(round(col * w / grid)),
        float(round(row * h / grid)),
        float(round((col + 1) * w / grid)),
        float(round((row + 1) * h / grid)),
    )


def _inside(box: BoxT, outer: BoxT) -> bool:
    return box[0] >= outer[0] and box[1] >= outer[1] and box[2] <= outer[2] and box[3] <= outer[3]


def check_pair(spec: PairSpec, ra: Rendered, rb: Rendered, grid: int = 0) -> RenderedPair | None:
    """GT boxes of a rendered pair, or ``None`` if it fails the visibility/separation rules.

    With ``grid`` (the cell-aligned setting) a difference's box is its object's whole cell,
    and a pair whose changed footprint leaves that cell is rejected.
    """
    changed = (ra.image != rb.image).any(axis=2)
    height, width = changed.shape
    boxes: list[BoxT] = []
    for diff in spec.differences:
        parts = difference_footprint(diff, ra, rb)
        box = union_box(parts)
        if box is None:
            return None
        if grid:
            obj = (spec.scene_b if diff.kind == "add" else spec.scene_a).by_uid()[diff.uid]
            cell = cell_box(grid, *cell_of(grid, obj), (width, height))
            if not _inside(box, cell):
                return None
            box = cell
        own = merge_footprints(parts)
        h, w = own.mask.shape
        window = changed[own.y0 : own.y0 + h, own.x0 : own.x0 + w]
        if int(np.count_nonzero(window & own.mask)) < MIN_CHANGED_PIXELS:
            return None
        boxes.append(box)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if iou(boxes[i], boxes[j]) > MAX_BOX_IOU:
                return None
    return RenderedPair(spec, ra.image, rb.image, boxes)


def render_pairs(
    renderer: Renderer,
    seed: int,
    stage: str,
    indices: list[int],
    batch: int = 16,
    scene: SceneOptions = DEFAULT_SCENE,
) -> Iterator[RenderedPair]:
    """Rendered, checked pairs for ``indices`` (in order); failed draws are redrawn."""
    for start in range(0, len(indices), batch):
        chunk = indices[start : start + batch]
        attempts = dict.fromkeys(chunk, 0)
        done: dict[int, RenderedPair] = {}
        while len(done) < len(chunk):
            specs = []
            for idx in chunk:
                if idx in done:
                    continue
                spec = None
                while spec is None:
                    if attempts[idx] >= MAX_ATTEMPTS:
                        raise RuntimeError(
                            f"DiG pair {stage}/{idx}: no valid draw in {MAX_ATTEMPTS}"
                        )
                    spec = draw_pair(seed, stage, idx, attempts[idx], scene)
                    attempts[idx] += 1
                specs.append(spec)
            scenes = [s for spec in specs for s in (spec.scene_a, spec.scene_b)]
            rendered = renderer.render_many(scenes)
            for n, spec in enumerate(specs):
                pair = check_pair(spec, rendered[2 * n], rendered[2 * n + 1], scene.grid)
                if pair is not None:
                    done[spec.index] = pair
        yield from (done[idx] for idx in chunk)


def png_bytes(image: np.ndarray) -> bytes:
    """Deterministic PNG bytes (see :mod:`tasks.dig.png`)."""
    return encode_png(image)


def stage_counts(n: int, split: str) -> dict[str, int]:
    """Pairs per stage: ``all`` splits ``n`` into thirds (remainder to the later stages)."""
    if split in STAGES:
        return {split: n}
    if split != "all":
        raise ValueError(f"unknown DiG split {split!r}; use single, dual, mixed or all")
    base, extra = divmod(n, 3)
    return {stage: base + (1 if i >= 3 - extra else 0) for i, stage in enumerate(STAGES)}


def generate(
    out_dir: str | Path,
    n: int,
    *,
    renderer: str = "raster",
    seed: int = 0,
    split: str = "mixed",
    size: tuple[int, int] = (320, 240),
    partition: str = "train",
    progress: bool = True,
    renderer_options: dict[str, Any] | None = None,
    scene: SceneOptions | None = None,
) -> Path:
    """Generate ``n`` DiG pairs into ``out_dir``; returns the manifest path.

    ``split``: ``single`` | ``dual`` | ``mixed`` | ``all`` (thirds of ``n``). ``size`` is
    ``(width, height)``. The dataset version (``dataset.json``) is the SHA-256 of the
    manifest, which records every image's SHA-256. ``scene`` sets the object count and
    sizes (:class:`~tasks.dig.scene.SceneOptions`; default 4–8 objects, small and large).
    With ``scene.grid`` (cell-aligned scenes) the raster renderer's camera is the top-down
    :func:`~tasks.dig.scene.grid_camera` and every box is a whole grid cell.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    counts = stage_counts(n, split)
    scene_opts = scene or DEFAULT_SCENE
    options = dict(renderer_options or {})
    if scene_opts.grid:
        if renderer != "raster" or "camera" in options:
            raise ValueError("DiG grid scenes need the raster renderer with its grid camera")
        if size[0] != size[1]:
            raise ValueError(f"DiG grid scenes need a square image, got {size[0]}x{size[1]}")
        options["camera"] = grid_camera(scene_opts.grid, *size)
    engine: Renderer = renderers.get(renderer)(size=size, **options)
    manifest_path = out / MANIFEST
    # Written under a temporary name and renamed last: a reader that sees manifest.jsonl sees
    # a complete data set (another process may be waiting on it, see generate_once).
    partial = out / (MANIFEST + ".partial")
    bar = tqdm(total=n, desc=f"DiG {renderer}", unit="pair", disable=not progress)
    try:
        with open(partial, "w", encoding="utf-8") as manifest:
            for stage, count in counts.items():
                for pair in render_pairs(engine, seed, stage, list(range(count)), scene=scene_opts):
                    row = _write_pair(out, pair, size, partition)
                    manifest.write(json.dumps(row, sort_keys=True) + "\n")
                    bar.update(1)
    finally:
        bar.close()
        engine.close()
    info = {
        "name": "dig",
        "version": file_sha256(partial),
        "generator": GENERATOR_VERSION,
        "renderer": renderer,
        "seed": seed,
        "n": n,
        "split": split,
        "counts": counts,
        "size": list(size),
        "partition": partition,
        "scene": dataclasses.asdict(scene_opts),
    }
    (out / DATASET_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    os.replace(partial, manifest_path)
    log.info("wrote %d DiG pairs to %s (version %s)", n, out, info["version"][:12])
    return manifest_path


def _write_pair(out: Path, pair: RenderedPair, size: tuple[int, int], partition: str) -> dict:
    spec = pair.spec
    pair_id = f"{spec.stage}-{spec.index:06d}"
    row: dict[str, Any] = {
        "id": pair_id,
        "stage": spec.stage,
        "partition": partition,
        "size": list(size),
        "boxes": [list(b) for b in pair.boxes],
        "differences": [
            {**d.to_json(), "box": list(b)}
            for d, b in zip(spec.differences, pair.boxes, strict=True)
        ],
        "n_objects": len(spec.scene_a.objects),
        "attempt": spec.attempt,
    }
    for key, image in (("a", pair.image_a), ("b", pair.image_b)):
        rel = f"images/{pair_id}_{key}.png"
        data = png_bytes(image)
        (out / rel).write_bytes(data)
        row[f"image_{key}"] = rel
        row[f"sha256_{key}"] = hashlib.sha256(data).hexdigest()
    return row


def generate_once(out_dir: str | Path, n: int, **options: Any) -> Path:
    """:func:`generate` unless ``out_dir`` already holds a complete data set.

    Safe when several processes ask at once (the ranks of a DDP job): one generates under an
    exclusive lock on ``out_dir/.generate.lock`` while the others wait, then find the manifest.
    """
    import fcntl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".generate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (out / MANIFEST).is_file():
                return out / MANIFEST
            return generate(out, n, **options)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
