"""RefCOCO / RefCOCO+ / RefCOCOg referring-expression grounding (Acc@0.5).

Reads the original release (Yu et al. 2016; Mao et al. 2016): ``refs(unc).p`` (or
``refs(umd).p``/``refs(google).p``), a pickled list of refs ``{"ref_id", "ann_id",
"image_id", "split", "sentences": [{"sent", ...}], ...}``, plus ``instances.json`` (COCO
format: images and the annotations the refs point to). One sample per referring expression
(sentence); the target is the annotation's box. ``split`` is the refs' own split name
(``val``, ``testA``, ``testB``, ``test``, ``train``).

The pickle is read with an unpickler that refuses every class, so a crafted file cannot run
code: the real files hold only lists, dicts, strings and numbers. Python 2 pickles (the
original release) decode their byte strings as latin-1.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas.geometry import CoordFrame
from schemas.reward import BoxSolution
from schemas.tasks import TaskSample
from tasks.base import BaseTask
from tasks.coco import CocoImage
from tasks.errors import DataFormatError
from tasks.frames import make_frame
from tasks.hashing import file_sha256
from tasks.prompts import coordinate_sentence
from tasks.registry import tasks
from tasks.validate import get, load_json, xywh_to_xyxy


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: refs files hold plain data only"
        )


def load_refs(path: str | Path) -> list[dict[str, Any]]:
    """The refs list of a ``refs(*).p`` pickle, validated (errors name file and field)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "<file>", "file not found")
    try:
        refs = _PlainUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataFormatError(path, "<pickle>", f"not a plain-data pickle ({exc})") from None
    if not isinstance(refs, list):
        raise DataFormatError(path, "<root>", f"expected a list of refs, got {type(refs).__name__}")
    for i, ref in enumerate(refs):
        where = f"[{i}]"
        for key in ("ref_id", "ann_id", "image_id"):
            get(ref, key, int, path, where)
        get(ref, "split", str, path, where)
        for j, sent in enumerate(get(ref, "sentences", list, path, where)):
            get(sent, "sent", str, path, f"{where}.sentences[{j}]")
    return refs


def load_ref_instances(
    path: str | Path,
) -> tuple[dict[int, CocoImage], dict[int, tuple[float, float, float, float]]]:
    """Images and annotation boxes (``[x1, y1, x2, y2]``) of RefCOCO's ``instances.json``."""
    path = Path(path)
    data = load_json(path)
    images = {}
    for i, img in enumerate(get(data, "images", list, path, "")):
        where = f"images[{i}]"
        image = CocoImage(
            get(img, "id", int, path, where),
            get(img, "file_name", str, path, where),
            get(img, "width", int, path, where),
            get(img, "height", int, path, where),
        )
        images[image.id] = image
    boxes = {}
    for i, ann in enumerate(get(data, "annotations", list, path, "")):
        where = f"annotations[{i}]"
        boxes[get(ann, "id", int, path, where)] = xywh_to_xyxy(
            get(ann, "bbox", list, path, where), path, f"{where}.bbox"
        )
    return images, boxes


def refcoco_prompt(expression: str, coordinates: str) -> str:
    return (
        f'Locate the object described as "{expression}" in the image. {coordinates} Answer '
        'with one box as JSON, like {"bbox_2d": [x1, y1, x2, y2]}.'
    )


@tasks.register("refcoco")
class RefCocoTask(BaseTask):
    """Referring-expression grounding; one sample per sentence (reward ``vlmr1_rec``)."""

    name = "refcoco"
    version = "1"

    def __init__(
        self,
        root: str | Path,
        refs_file: str | Path,
        instances_file: str | Path,
        split: str = "val",
        dataset: str = "refcoco",
        coords: CoordFrame = "pixel",
        reward: str = "vlmr1_rec",
        limit: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            split=split, dataset=dataset, coords=coords, reward=reward, limit=limit, **options
        )
        self.root, self.refs_file, self.instances_file = (
            Path(root),
            Path(refs_file),
            Path(instances_file),
        )
        self.default_split, self.dataset, self.coords, self.reward, self.limit = (
            split,
            dataset,
            coords,
            reward,
            limit,
        )
        self.metrics = ["refcoco_acc50"]
        self._refs: list[dict[str, Any]] | None = None

    @property
    def refs(self) -> list[dict[str, Any]]:
        if self._refs is None:
            self._refs = load_refs(self.refs_file)
        return self._refs

    def splits(self) -> list[str]:
        return sorted({r["split"] for r in self.refs})

    def _samples(self, split: str) -> Iterator[TaskSample]:
        images, boxes = load_ref_instances(self.instances_file)
        count = 0
        for i, ref in enumerate(self.refs):
            if ref["split"] != split:
                continue
            if ref["image_id"] not in images:
                raise DataFormatError(
                    self.refs_file,
                    f"[{i}].image_id",
                    f"image {ref['image_id']} not in {self.instances_file.name}",
                )
            if ref["ann_id"] not in boxes:
                raise DataFormatError(
                    self.refs_file,
                    f"[{i}].ann_id",
                    f"annotation {ref['ann_id']} not in {self.instances_file.name}",
                )
            image, box = images[ref["image_id"]], boxes[ref["ann_id"]]
            frame = make_frame(self.coords, (image.width, image.height))
            for j, sent in enumerate(ref["sentences"]):
                if self.limit is not None and count >= self.limit:
                    return
                count += 1
                expression = sent["sent"].strip()
                yield TaskSample(
                    id=f"{self.dataset}-{split}-{ref['ref_id']}-{j}",
                    images=[str(self.root / image.file_name)],
                    prompt=refcoco_prompt(expression, coordinate_sentence(frame)),
                    solution=BoxSolution(boxes=[box]),
                    frame=frame,
                    query=expression,
                    meta={"ref_id": ref["ref_id"], "ann_id": ref["ann_id"], "image_id": image.id},
                )

    def _data_hashes(self, split: str) -> list[str]:
        return [file_sha256(self.refs_file), file_sha256(self.instances_file)]
