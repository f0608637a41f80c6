"""The DiG task: read a generated directory (see :mod:`tasks.dig.generate`) as samples.

``get_task("dig", root=DIR, split="single"|"dual"|"mixed"|"all", coords="pixel")``. Here
``split`` is the curriculum stage; ``samples(partition)`` picks the manifest partition
(``"train"`` by default). ``samples("single")`` (a stage name) also works: it serves that
stage from every partition, so a curriculum can ask one task for each stage. Each sample shows both images (A then B); the answer is a list of
boxes in image B, read through the task's frame; the prompt never states the count.
``prompt="short"`` swaps in a terse system prompt and instruction (tiny models with byte-level
tokenizers; same answer dialect and frame); ``prompt="minimal"`` a few words only (tiny models
trained from scratch, which learn the dialect from SFT).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas.geometry import CoordFrame, Frame
from schemas.reward import BoxSolution
from schemas.tasks import TaskSample
from tasks.base import BaseTask
from tasks.dig.generate import DATASET_INFO, MANIFEST, STAGES
from tasks.errors import DataFormatError
from tasks.frames import make_frame
from tasks.hashing import file_sha256
from tasks.prompts import box_list_example, coordinate_sentence
from tasks.registry import tasks
from tasks.validate import get, load_jsonl, numbers, xyxy

DIG_QUERY = "every difference between the two images"
PROMPTS = ("full", "short", "minimal")


SHORT_SYSTEM_PROMPT = "Reason in <think> </think>, then answer in <answer> </answer>."
"""System turn of the ``prompt="short"`` variant (same answer layout, a few tokens)."""


MINIMAL_SYSTEM_PROMPT = "Spot differences."
"""System turn of the ``prompt="minimal"`` variant."""

MINIMAL_USER_PROMPT = "Boxes?"
"""User text of the ``prompt="minimal"`` variant: no frame, no dialect, a handful of tokens.

For tiny models trained from scratch (the CPU toy of :mod:`trainer.toy`): with a byte-level
tokenizer the ``short`` prompt is ~190 tokens of constant text beside 8 image tokens, and the
model needs ~300 SFT steps before it attends to the images at all; with this one (~60 tokens)
it starts after ~150–250 (docs/training.md, "Minimal prompt, cosine SFT"). The answer layout is taught by the
SFT completions, so the prompt does not need to state it.
"""


def short_dig_prompt(frame: Frame) -> str:
    """A terse DiG instruction for tiny models (byte-level tokens make every character cost a
    step): the frame and answer dialect of :func:`dig_prompt`, without the explanations."""
    size = f" of the {frame.image_size[0]}x{frame.image_size[1]} image" if frame.image_size else ""
    unit = {"pixel": f"integer pixels{size}", "norm1000": "integers 0-1000", "norm1": "0-1"}
    where = unit.get(frame.coords, f"input pixels{size}")
    return f'Box each difference in image 2 ({where}): [{{"bbox_2d": [x1, y1, x2, y2]}}, ...]'


def dig_prompt(coordinates: str) -> str:
    """The user text of a DiG sample (the number of differences is not given)."""
    return (
        "The first and the second image show the same scene, but some objects differ: an "
        "object may have changed its colour, shape, size or material, appeared, disappeared or "
        "moved. How many differences there are is not known. Find every difference and mark "
        "each with one box in the second image: for an object that disappeared, box where it "
        "was; for an object that moved, one box covering its old and its new place. "
        f"{coordinates} Answer with a JSON list, one entry per difference, like "
        f"{box_list_example('qwen25')}"
    )


@tasks.register("dig")
class DigTask(BaseTask):
    """Differential grounding on a generated DiG directory (reward preset ``dig``)."""

    name = "dig"
    version = "1"
    default_split = "train"

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        coords: CoordFrame = "pixel",
        reward: str = "dig",
        limit: int | None = None,
        prompt: str = "full",
        **options: Any,
    ) -> None:
        if split not in (*STAGES, "all"):
            raise ValueError(f"DiG split {split!r}: use one of {', '.join(STAGES)} or all")
        if prompt not in PROMPTS:
            raise ValueError(f"DiG prompt {prompt!r}: use one of {', '.join(PROMPTS)}")
        kwargs = {"prompt": prompt} if prompt != "full" else {}
        super().__init__(
            split=split, coords=coords, reward=reward, limit=limit, **kwargs, **options
        )
        self.prompt = prompt
        if prompt == "short":
            self.system_prompt = SHORT_SYSTEM_PROMPT
        elif prompt == "minimal":
            self.system_prompt = MINIMAL_SYSTEM_PROMPT
        self.root = Path(root)
        self.stage = split
        self.coords: CoordFrame = coords
        self.reward = reward
        self.metrics = ["dig_f1_miou"]
        self.limit = limit
        self._rows: list[dict[str, Any]] | None = None

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def rows(self) -> list[dict[str, Any]]:
        """Validated manifest rows of this task's stage (all partitions)."""
        if self._rows is None:
            rows = [
                _check_row(row, self.manifest, n, self.root)
                for n, row in enumerate(load_jsonl(self.manifest), start=1)
            ]
            self._rows = [r for r in rows if self.stage in ("all", r["stage"])]
        return self._rows

    def splits(self) -> list[str]:
        """Partitions in the manifest, plus the stage names present (see the module doc)."""
        rows = self.rows()
        return sorted({r["partition"] for r in rows} | {r["stage"] for r in rows})

    def dataset_version(self) -> str | None:
        """The generator's recorded version (``dataset.json``), if present."""
        info = self.root / DATASET_INFO
        if not info.is_file():
            return None
        import json

        return json.loads(info.read_text()).get("version")

    def _samples(self, split: str) -> Iterator[TaskSample]:
        count = 0
        by_stage = split in STAGES
        for row in self.rows():
            if row["stage" if by_stage else "partition"] != split:
                continue
            if self.limit is not None and count >= self.limit:
                return
            count += 1
            yield self._sample(row)

    def _sample(self, row: dict[str, Any]) -> TaskSample:
        width, height = (int(v) for v in row["size"])
        frame = make_frame(self.coords, (width, height))
        return TaskSample(
            id=row["id"],
            images=[str(self.root / row["image_a"]), str(self.root / row["image_b"])],
            prompt=self._prompt_text(frame),
            solution=BoxSolution(boxes=[tuple(b) for b in row["boxes"]]),
            frame=frame,
            query=DIG_QUERY,
            meta={
                "stage": row["stage"],
                "n_differences": len(row["boxes"]),
                "kinds": [d.get("kind") for d in row.get("differences", [])],
                # the manifest's differences (kind, before/after, object, box): what
                # tasks/dig/traces.py describes in an SFT reasoning trace
                "differences": row.get("differences", []),
            },
        )

    def _prompt_text(self, frame: Frame) -> str:
        if self.prompt == "short":
            return short_dig_prompt(frame)
        if self.prompt == "minimal":
            return MINIMAL_USER_PROMPT
        return dig_prompt(coordinate_sentence(frame))

    def _data_hashes(self, split: str) -> list[str]:
        return [file_sha256(self.manifest)]


def _check_row(row: Any, file: Path, line: int, root: Path) -> dict[str, Any]:
    where = f"line {line}"
    for key in ("id", "image_a", "image_b", "stage", "partition"):
        get(row, key, str, file, where)
    if row["stage"] not in STAGES:
        raise DataFormatError(
            file, f"{where}.stage", f"expected one of {STAGES}, got {row['stage']!r}"
        )
    size = numbers(get(row, "size", list, file, where), 2, file, f"{where}.size")
    if min(size) <= 0:
        raise DataFormatError(
            file, f"{where}.size", f"expected positive [width, height], got {size}"
        )
    boxes = get(row, "boxes", list, file, where)
    for i, box in enumerate(boxes):
        xyxy(box, file, f"{where}.boxes[{i}]")
    for key in ("image_a", "image_b"):
        if not (root / row[key]).is_file():
            raise DataFormatError(file, f"{where}.{key}", f"image file not found: {row[key]}")
    return row
