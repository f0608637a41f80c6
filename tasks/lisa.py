"""LISA ReasonSeg reasoning segmentation, as box grounding plus masks for gIoU/cIoU.

Layout of the release (Lai et al., LISA, CVPR 2024): ``ROOT/<split>/<name>.jpg`` next to
``ROOT/<split>/<name>.json`` with ``{"text": [queries], "is_sentence": bool, "shapes":
[{"label": "target" | "ignore" | ..., "points": [[x, y], ...]}]}`` (labelme polygons).

Masks follow LISA's ``get_mask_from_json``: polygons are filled from the largest area to the
smallest (small ones stay on top); ``target`` → 1, ``ignore`` → 255 (excluded from both
intersection and union by the metric), other labels are skipped. The box target is the
pixel-edge box of the target mask. As in LISA's validation, ``val``/``test`` use the *first*
query of each image (one sample per image, so gIoU is a per-image mean); ``train`` yields
every query unless ``all_queries=False``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schemas.geometry import CoordFrame
from schemas.reward import BoxSolution
from schemas.tasks import TaskSample
from tasks.base import BaseTask
from tasks.errors import DataFormatError
from tasks.frames import make_frame
from tasks.hashing import combine, file_sha256
from tasks.prompts import coordinate_sentence
from tasks.registry import tasks
from tasks.validate import get, load_json, numbers

IGNORE = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Polygon:
    label: str
    points: tuple[tuple[float, float], ...]

    def area(self) -> float:
        """Shoelace area ``|Σ (x_i·y_{i+1} − x_{i+1}·y_i)| / 2``."""
        pts = np.asarray(self.points)
        x, y = pts[:, 0], pts[:, 1]
        return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2.0)


@dataclass(frozen=True)
class ReasonSegRecord:
    image: Path
    json: Path
    queries: tuple[str, ...]
    is_sentence: bool
    polygons: tuple[Polygon, ...]


def load_record(json_path: Path) -> ReasonSegRecord:
    """Parse one ReasonSeg JSON (errors name the file and the field)."""
    data = load_json(json_path)
    texts = get(data, "text", list, json_path, "")
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise DataFormatError(json_path, "text", "expected a non-empty list of non-empty strings")
    polygons = []
    for i, shape in enumerate(get(data, "shapes", list, json_path, "")):
        where = f"shapes[{i}]"
        label = get(shape, "label", str, json_path, where)
        points = get(shape, "points", list, json_path, where)
        if len(points) < 3:
            raise DataFormatError(
                json_path, f"{where}.points", f"a polygon needs >= 3 points, got {len(points)}"
            )
        pts = tuple(
            tuple(numbers(p, 2, json_path, f"{where}.points[{j}]")) for j, p in enumerate(points)
        )
        polygons.append(Polygon(label, pts))  # type: ignore[arg-type]
    image = next(
        (json_path.with_suffix(s) for s in IMAGE_SUFFIXES if json_path.with_suffix(s).is_file()),
        None,
    )
    if image is None:
        raise DataFormatError(
            json_path, "<image>", f"no image {json_path.stem}{{.jpg,.jpeg,.png}} next to it"
        )
    return ReasonSegRecord(
        image,
        json_path,
        tuple(t.strip() for t in texts),
        bool(data.get("is_sentence", False)),
        tuple(polygons),
    )


def rasterize(polygons: tuple[Polygon, ...] | list[Polygon], size: tuple[int, int]) -> np.ndarray:
    """``(H, W) uint8`` label map: 0 background, 1 target, 255 ignore (largest drawn first)."""
    from PIL import Image, ImageDraw

    width, height = size
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in sorted(polygons, key=lambda p: p.area(), reverse=True):
        value = {"target": 1, "ignore": IGNORE}.get(poly.label)
        if value is not None:
            draw.polygon([tuple(p) for p in poly.points], fill=value, outline=value)
    return np.asarray(canvas)


def reasonseg_masks(json_path: str | Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Target and ignore masks ``(H, W) bool`` of one ReasonSeg JSON for an image ``size``."""
    labels = rasterize(load_record(Path(json_path)).polygons, size)
    return labels == 1, labels == IGNORE


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Pixel-edge box ``[x1, y1, x2, y2]`` of a boolean mask (``None`` if empty)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def reasonseg_prompt(query: str, coordinates: str) -> str:
    return (
        f"{query} Find the object in the image that this refers to and give its box. "
        f'{coordinates} Answer with one box as JSON, like {{"bbox_2d": [x1, y1, x2, y2]}}.'
    )


@tasks.register("reasonseg")
class ReasonSegTask(BaseTask):
    """ReasonSeg as box grounding (reward ``virft_lisa``; metrics gIoU/cIoU on masks)."""

    name = "reasonseg"
    version = "1"

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        coords: CoordFrame = "pixel",
        all_queries: bool | None = None,
        reward: str = "virft_lisa",
        limit: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            split=split,
            coords=coords,
            all_queries=all_queries,
            reward=reward,
            limit=limit,
            **options,
        )
        self.root, self.default_split, self.coords = Path(root), split, coords
        self.all_queries, self.reward, self.limit = all_queries, reward, limit
        self.metrics = ["lisa_giou_ciou"]

    def splits(self) -> list[str]:
        return (
            sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
        )

    def json_files(self, split: str) -> list[Path]:
        return sorted((self.root / split).glob("*.json"))

    def _samples(self, split: str) -> Iterator[TaskSample]:
        every = self.all_queries if self.all_queries is not None else split == "train"
        count = 0
        for json_path in self.json_files(split):
            rec = load_record(json_path)
            size = _image_size(rec.image)
            box = mask_box(rasterize(rec.polygons, size) == 1)
            frame = make_frame(self.coords, size)
            for q, query in enumerate(rec.queries if every else rec.queries[:1]):
                if self.limit is not None and count >= self.limit:
                    return
                count += 1
                yield TaskSample(
                    id=f"reasonseg-{split}-{json_path.stem}-{q}",
                    images=[str(rec.image)],
                    prompt=reasonseg_prompt(query, coordinate_sentence(frame)),
                    solution=BoxSolution(boxes=[box] if box is not None else []),
                    frame=frame,
                    query=query,
                    meta={"json": str(json_path), "is_sentence": rec.is_sentence},
                )

    def _data_hashes(self, split: str) -> list[str]:
        return [combine(file_sha256(p) for p in self.json_files(split))]


tasks.register("lisa")(ReasonSegTask)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size
