"""COCO-format detection, and Visual-RFT's few-shot detection protocol.

Reads the instances JSON of COCO (``images``: ``id``, ``file_name``, ``width``, ``height``;
``annotations``: ``image_id``, ``category_id``, ``bbox = [x, y, w, h]``, ``iscrowd``;
``categories``: ``id``, ``name``) plus an image directory. Boxes become ``[x1, y1, x2, y2]``
pixels. Crowd annotations are not targets (COCOeval ignores them as well); with
``include_crowd=True`` they are kept in the solution and flagged in ``meta["iscrowd"]`` so the
COCO metric can treat them as COCOeval does (ignore regions). ``meta["areas"]`` carries each
box's annotation ``area`` (COCOeval's small/medium/large ranges use it, not the box area).

* ``coco_detection``: one sample per image; every object of the chosen categories, with labels.
* ``coco_fewshot`` (Visual-RFT, Liu et al. 2025): one sample per (image, category) — the model
  is asked about one category at a time and answers boxes *with a confidence each* (the
  ``virft`` dialect ``{"Position": [...], "Confidence": c}``, 0–1000 coordinates by default).
  ``shots=k`` keeps k images per category (drawn with ``seed``; the k-shot training subsets);
  an *exist map* (JSON ``{file_name or image id: [category names]}``) says which categories
  are asked for each image. Visual-RFT built its map from a baseline model's guesses, so it
  may ask for absent categories (their solution has no boxes). Without a map the categories
  present in the ground truth are asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from schemas.geometry import CoordFrame
from schemas.reward import BoxSolution
from schemas.tasks import TaskSample
from tasks.base import BaseTask
from tasks.errors import DataFormatError
from tasks.frames import make_frame
from tasks.hashing import file_sha256
from tasks.prompts import BoxDialect, box_list_example, coordinate_sentence
from tasks.registry import tasks
from tasks.validate import get, load_json, xywh_to_xyxy

BoxT = tuple[float, float, float, float]


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class CocoObject:
    category_id: int
    box: BoxT
    iscrowd: bool
    area: float  # the annotation's ``area`` (segment area; COCOeval's area ranges use it)


@dataclass
class CocoIndex:
    """A validated COCO instances file."""

    path: Path
    images: dict[int, CocoImage]
    categories: dict[int, str]
    objects: dict[int, list[CocoObject]] = field(default_factory=dict)

    def category_id(self, name: str) -> int:
        for cid, cname in self.categories.items():
            if cname == name:
                return cid
        raise ValueError(
            f"{self.path}: no category named {name!r} (have: {sorted(self.categories.values())})"
        )


def load_coco(path: str | Path) -> CocoIndex:
    """Parse and validate a COCO instances JSON; errors name the file and the field."""
    path = Path(path)
    data = load_json(path)
    images: dict[int, CocoImage] = {}
    for i, img in enumerate(get(data, "images", list, path, "")):
        where = f"images[{i}]"
        width, height = get(img, "width", int, path, where), get(img, "height", int, path, where)
        if width <= 0 or height <= 0:
            raise DataFormatError(
                path, f"{where}.width", f"expected positive sizes, got {width}×{height}"
            )
        image = CocoImage(
            get(img, "id", int, path, where), get(img, "file_name", str, path, where), width, height
        )
        images[image.id] = image
    categories = {
        get(cat, "id", int, path, f"categories[{i}]"): get(
            cat, "name", str, path, f"categories[{i}]"
        )
        for i, cat in enumerate(get(data, "categories", list, path, ""))
    }
    index = CocoIndex(path, images, categories, {image_id: [] for image_id in images})
    for i, ann in enumerate(get(data, "annotations", list, path, "")):
        where = f"annotations[{i}]"
        image_id = get(ann, "image_id", int, path, where)
        if image_id not in images:
            raise DataFormatError(path, f"{where}.image_id", f"no image with id {image_id}")
        category_id = get(ann, "category_id", int, path, where)
        if category_id not in categories:
            raise DataFormatError(
                path, f"{where}.category_id", f"no category with id {category_id}"
            )
        box = xywh_to_xyxy(get(ann, "bbox", list, path, where), path, f"{where}.bbox")
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1):
            raise DataFormatError(path, f"{where}.iscrowd", f"expected 0 or 1, got {crowd!r}")
        area = ann.get("area", (box[2] - box[0]) * (box[3] - box[1]))
        if isinstance(area, bool) or not isinstance(area, int | float) or area < 0:
            raise DataFormatError(path, f"{where}.area", f"expected a number >= 0, got {area!r}")
        index.objects[image_id].append(CocoObject(category_id, box, bool(crowd), float(area)))
    return index


class _CocoBase(BaseTask):
    """Shared options: ``root`` (image dir), ``ann_file``, ``split`` (its name), ``coords``."""

    def __init__(
        self,
        root: str | Path,
        ann_file: str | Path,
        split: str = "val",
        coords: CoordFrame = "pixel",
        categories: list[str] | None = None,
        reward: str = "virft_detection",
        limit: int | None = None,
        include_crowd: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(
            split=split,
            coords=coords,
            categories=categories,
            reward=reward,
            limit=limit,
            include_crowd=include_crowd,
            **options,
        )
        self.include_crowd = include_crowd
        self.root, self.ann_file = Path(root), Path(ann_file)
        self.split_name, self.coords, self.reward, self.limit = split, coords, reward, limit
        self.default_split = split
        self.category_names = categories
        self._index: CocoIndex | None = None

    @property
    def index(self) -> CocoIndex:
        if self._index is None:
            self._index = load_coco(self.ann_file)
        return self._index

    def selected_categories(self) -> list[int]:
        """Category ids in the task (all when no ``categories`` option), in file order."""
        if self.category_names is None:
            return list(self.index.categories)
        return [self.index.category_id(name) for name in self.category_names]

    def splits(self) -> list[str]:
        return [self.split_name]

    def _data_hashes(self, split: str) -> list[str]:
        return [file_sha256(self.ann_file)]

    def _image_path(self, image: CocoImage) -> str:
        return str(self.root / image.file_name)

    def targets(self, image_id: int, categories: set[int]) -> list[CocoObject]:
        """Objects of ``categories`` in the image (crowd ones only with ``include_crowd``)."""
        return [
            o
            for o in self.index.objects[image_id]
            if o.category_id in categories and (self.include_crowd or not o.iscrowd)
        ]


def object_meta(objs: list[CocoObject]) -> dict[str, Any]:
    """Per-box COCOeval fields aligned with the solution boxes."""
    return {"areas": [o.area for o in objs], "iscrowd": [int(o.iscrowd) for o in objs]}


def detection_prompt(names: list[str], coordinates: str) -> str:
    """Find every object of the listed categories, with labels."""
    listing = ", ".join(names)
    return (
        f"Find every object of these categories in the image: {listing}. {coordinates} Answer "
        "with a JSON list, one entry per object with its box and category, like "
        f"{box_list_example('qwen25', label='category')}; answer [] if there is none."
    )


def fewshot_prompt(category: str, coordinates: str, dialect: BoxDialect) -> str:
    """Visual-RFT-style per-category prompt: boxes plus a confidence per box."""
    return (
        f"Find every {category} in the image. {coordinates} For each one also give your "
        "confidence that it really is there, a number from 0 to 1 with two decimals. Answer "
        f"with a list like {box_list_example(dialect)}; if there is no {category}, answer "
        "No Objects."
    )


@tasks.register("coco_detection")
class CocoDetectionTask(_CocoBase):
    """One sample per image: all non-crowd objects of the chosen categories (labelled)."""

    name = "coco_detection"
    version = "1"

    def __init__(self, root: str | Path, ann_file: str | Path, **options: Any) -> None:
        super().__init__(root, ann_file, **options)
        self.metrics = ["coco_map"]

    def _samples(self, split: str) -> Iterator[TaskSample]:
        index, cats = self.index, self.selected_categories()
        names = [index.categories[c] for c in cats]
        wanted = set(cats)
        for n, image in enumerate(sorted(index.images.values(), key=lambda im: im.id)):
            if self.limit is not None and n >= self.limit:
                return
            objs = self.targets(image.id, wanted)
            frame = make_frame(self.coords, (image.width, image.height))
            yield TaskSample(
                id=f"coco-{image.id}",
                images=[self._image_path(image)],
                prompt=detection_prompt(names, coordinate_sentence(frame)),
                solution=BoxSolution(
                    boxes=[o.box for o in objs],
                    labels=[index.categories[o.category_id] for o in objs],
                ),
                frame=frame,
                query=", ".join(names),
                meta={"image_id": image.id, "file_name": image.file_name, **object_meta(objs)},
            )


@tasks.register("coco_fewshot")
class CocoFewShotTask(_CocoBase):
    """Visual-RFT few-shot protocol: one sample per (image, category) in the exist map."""

    name = "coco_fewshot"
    version = "1"

    def __init__(
        self,
        root: str | Path,
        ann_file: str | Path,
        shots: int | None = None,
        exist_map: str | Path | None = None,
        seed: int = 0,
        coords: CoordFrame = "norm1000",
        dialect: BoxDialect = "virft",
        **options: Any,
    ) -> None:
        super().__init__(
            root, ann_file, coords=coords, shots=shots, seed=seed, dialect=dialect, **options
        )
        self.shots, self.seed, self.dialect = shots, seed, dialect
        self.exist_map = Path(exist_map) if exist_map is not None else None
        self.metrics = ["virft_fewshot_ap", "coco_map"]

    def pairs(self) -> list[tuple[int, int]]:
        """(image id, category id) pairs asked, ordered by image id then category order."""
        index, cats = self.index, self.selected_categories()
        if self.shots is not None:
            return self._kshot_pairs(cats)
        asked = self._load_exist_map() if self.exist_map is not None else None
        out = []
        for image in sorted(index.images.values(), key=lambda im: im.id):
            if asked is None:
                present = {o.category_id for o in index.objects[image.id] if not o.iscrowd}
            else:
                present = asked.get(str(image.id), asked.get(image.file_name, set()))
            out.extend((image.id, c) for c in cats if c in present)
        return out

    def _kshot_pairs(self, cats: list[int]) -> list[tuple[int, int]]:
        """k images per category among those that contain it, drawn with ``seed``."""
        index = self.index
        out: list[tuple[int, int]] = []
        for cid in cats:
            candidates = sorted(
                image_id
                for image_id, objs in index.objects.items()
                if any(o.category_id == cid and not o.iscrowd for o in objs)
            )
            rng = np.random.default_rng([self.seed, cid])
            k = min(self.shots or 0, len(candidates))
            chosen = sorted(rng.choice(len(candidates), size=k, replace=False).tolist())
            out.extend((candidates[i], cid) for i in chosen)
        return out

    def _load_exist_map(self) -> dict[str, set[int]]:
        assert self.exist_map is not None
        data = load_json(self.exist_map)
        if not isinstance(data, dict):
            raise DataFormatError(
                self.exist_map, "<root>", "expected an object {image: [category names]}"
            )
        by_name = {name: cid for cid, name in self.index.categories.items()}
        out: dict[str, set[int]] = {}
        for key, names in data.items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise DataFormatError(self.exist_map, key, "expected a list of category names")
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise DataFormatError(self.exist_map, key, f"unknown categories {unknown}")
            out[str(key)] = {by_name[n] for n in names}
        return out

    def _samples(self, split: str) -> Iterator[TaskSample]:
        index = self.index
        for n, (image_id, cid) in enumerate(self.pairs()):
            if self.limit is not None and n >= self.limit:
                return
            image, category = index.images[image_id], index.categories[cid]
            objs = self.targets(image_id, {cid})
            boxes = [o.box for o in objs]
            frame = make_frame(self.coords, (image.width, image.height))
            yield TaskSample(
                id=f"coco-{image_id}-{cid}",
                images=[self._image_path(image)],
                prompt=fewshot_prompt(category, coordinate_sentence(frame), self.dialect),
                solution=BoxSolution(boxes=boxes, labels=[category] * len(boxes)),
                frame=frame,
                query=category,
                meta={
                    "image_id": image_id,
                    "category_id": cid,
                    "category": category,
                    "file_name": image.file_name,
                    **object_meta(objs),
                },
            )

    def _data_hashes(self, split: str) -> list[str]:
        hashes = [file_sha256(self.ann_file)]
        if self.exist_map is not None:
            hashes.append(file_sha256(self.exist_map))
        return hashes
