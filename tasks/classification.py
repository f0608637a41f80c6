"""Fine-grained classification (Flower102, Pets37, FGVC-Aircraft, Stanford-Cars style).

``get_task("classification", root=DIR, split="test", domain="flower")`` reads the split from
the first of these that exists:

* ``DIR/<split>.csv``: a header with ``image`` and ``label`` columns (paths relative to DIR);
* ``DIR/<split>.json``: a list of ``{"image": path, "label": label}``;
* ``DIR/<split>/<label>/<image>``: an ImageFolder tree (the folder name is the label).

Optional ``DIR/classes.json`` maps each label to a display name or to
``{"name": ..., "synonyms": [...]}`` (labels like ``"17"`` or ``"boeing_737"`` become readable
names; synonyms are accepted answers). Without it the label with ``_`` → space is the name.
The reward (``virft_classification``) matches answers exactly after normalisation, never by
substring (Visual-RFT's substring match counts an empty answer as correct).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.reward import LabelSolution
from schemas.tasks import TaskSample
from tasks.base import BaseTask
from tasks.errors import DataFormatError
from tasks.frames import make_frame
from tasks.hashing import combine, file_sha256
from tasks.registry import tasks
from tasks.validate import get, load_json

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif"}
CLASSES_FILE = "classes.json"


@dataclass(frozen=True)
class ClassName:
    name: str
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Item:
    image: Path
    label: str


def load_classes(path: Path) -> dict[str, ClassName]:
    """``classes.json``: ``{label: name}`` or ``{label: {"name", "synonyms"}}``."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise DataFormatError(
            path, "<root>", "expected an object {label: name or {name, synonyms}}"
        )
    out: dict[str, ClassName] = {}
    for label, value in data.items():
        if isinstance(value, str) and value:
            out[label] = ClassName(value)
            continue
        name = get(value, "name", str, path, label)
        synonyms = value.get("synonyms", [])
        if not isinstance(synonyms, list) or not all(isinstance(s, str) for s in synonyms):
            raise DataFormatError(path, f"{label}.synonyms", "expected a list of strings")
        out[label] = ClassName(name, tuple(synonyms))
    return out


def read_csv_list(path: Path, root: Path) -> list[Item]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"image", "label"} - set(reader.fieldnames or [])
        if missing:
            raise DataFormatError(
                path, "<header>", f"missing columns {sorted(missing)} (need image,label)"
            )
        items = []
        for line, row in enumerate(reader, start=2):
            if not row["image"] or not row["label"]:
                field = "image" if not row["image"] else "label"
                raise DataFormatError(path, f"line {line}.{field}", "empty")
            items.append(Item(root / row["image"], row["label"]))
    return items


def read_json_list(path: Path, root: Path) -> list[Item]:
    data = load_json(path)
    if not isinstance(data, list):
        raise DataFormatError(path, "<root>", "expected a list of {image, label}")
    items = []
    for i, row in enumerate(data):
        label = get(row, "label", (str, int), path, f"[{i}]")
        items.append(Item(root / get(row, "image", str, path, f"[{i}]"), str(label)))
    return items


def read_image_folder(path: Path) -> list[Item]:
    items = []
    for class_dir in sorted(p for p in path.iterdir() if p.is_dir()):
        for image in sorted(class_dir.iterdir()):
            if image.suffix.lower() in IMAGE_SUFFIXES:
                items.append(Item(image, class_dir.name))
    return items


def classification_prompt(domain: str, choices: list[str] | None) -> str:
    text = (
        f"What exactly is the {domain} in this image? Name its specific category "
        "(for example its species, breed or model), and put only that name in the answer."
    )
    if choices:
        text += " Choose from: " + "; ".join(choices) + "."
    return text


@tasks.register("classification")
class ClassificationTask(BaseTask):
    """Fine-grained classification over an ImageFolder or CSV/JSON list (``accuracy``)."""

    name = "classification"
    version = "1"

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        domain: str = "object",
        show_choices: bool = False,
        reward: str = "virft_classification",
        limit: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            split=split,
            domain=domain,
            show_choices=show_choices,
            reward=reward,
            limit=limit,
            **options,
        )
        self.root, self.domain, self.show_choices = Path(root), domain, show_choices
        self.default_split, self.reward, self.limit = split, reward, limit
        self.metrics = ["accuracy"]

    def source(self, split: str) -> Path | None:
        for candidate in (
            self.root / f"{split}.csv",
            self.root / f"{split}.json",
            self.root / split,
        ):
            if candidate.exists():
                return candidate
        return None

    def splits(self) -> list[str]:
        names = {p.stem for p in self.root.glob("*.csv")} | {
            p.stem for p in self.root.glob("*.json") if p.name != CLASSES_FILE
        }
        names |= (
            {p.name for p in self.root.iterdir() if p.is_dir()} if self.root.is_dir() else set()
        )
        return sorted(names)

    def items(self, split: str) -> list[Item]:
        src = self.source(split)
        if src is None:
            raise DataFormatError(
                self.root, split, "no <split>.csv, <split>.json or <split>/ folder"
            )
        if src.suffix == ".csv":
            return read_csv_list(src, self.root)
        if src.suffix == ".json":
            return read_json_list(src, self.root)
        return read_image_folder(src)

    def classes(self) -> dict[str, ClassName]:
        path = self.root / CLASSES_FILE
        return load_classes(path) if path.is_file() else {}

    def class_name(self, label: str, classes: dict[str, ClassName]) -> ClassName:
        if classes:
            if label not in classes:
                raise DataFormatError(
                    self.root / CLASSES_FILE, label, "label used by the data but not listed"
                )
            return classes[label]
        return ClassName(label.replace("_", " "))

    def _samples(self, split: str) -> Iterator[TaskSample]:
        items, classes = self.items(split), self.classes()
        names = sorted({self.class_name(it.label, classes).name for it in items})
        prompt = classification_prompt(self.domain, names if self.show_choices else None)
        for n, item in enumerate(items):
            if self.limit is not None and n >= self.limit:
                return
            cls = self.class_name(item.label, classes)
            yield TaskSample(
                id=f"{split}-{n:06d}",
                images=[str(item.image)],
                prompt=prompt,
                solution=LabelSolution(label=cls.name, synonyms=list(cls.synonyms)),
                frame=make_frame("pixel", _image_size(item.image)),
                query=f"a photo of a {self.domain}",
                meta={"label": item.label, "file": str(item.image.relative_to(self.root))},
            )

    def _data_hashes(self, split: str) -> list[str]:
        src = self.source(split)
        hashes = []
        if src is not None and src.is_file():
            hashes.append(file_sha256(src))
        elif src is not None:  # ImageFolder: the list of (label, file name) pairs
            hashes.append(combine(f"{it.label}/{it.image.name}" for it in read_image_folder(src)))
        if (self.root / CLASSES_FILE).is_file():
            hashes.append(file_sha256(self.root / CLASSES_FILE))
        return hashes


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the image header (the pixels are not decoded)."""
    from PIL import Image

    if not path.is_file():
        raise DataFormatError(path, "<file>", "image file not found")
    with Image.open(path) as im:
        return im.size
