"""Gold SFT completions for DiG samples, with reasoning traces written from the scene diff.

The generator knows every change it made (``Difference``: kind, the changed attribute before
and after, the whole object, its box), so a trace can be exact, not a model's guess:

    <think>Comparing the two images, I find 2 differences. 1. The small red rubber cube on
    the left is now blue. 2. A large cyan metal sphere appeared at the bottom right. I box
    each of them in the second image.</think><answer>[{"bbox_2d": [..]}, {"bbox_2d": [..]}]</answer>

One numbered sentence per difference, in manifest order, which is also the order of the
boxes in the answer. The sentence for each kind (object attributes as they are in image A;
for ``add`` as they are in image B):

* ``color`` / ``size`` / ``material``: "The <object> <where> is now <new value>."
* ``shape``: "The <object> <where> is now a <new shape>."
* ``add``: "A <object> appeared <where>."    ``remove``: "The <object> <where> is gone."
* ``move``: "The <object> <where> moved." (the box covers its old and new place)

``<object>`` is "<size> <colour> <material> <shape>", with the *old* value of the changed
attribute. ``<where>`` is the coarse location of the difference's box in image B: the third
of the width (left, middle, right) and of the height (top, middle, bottom) that holds the box
centre, e.g. "at the top left", "on the right", "in the centre"
(:func:`location_phrase`).

The answer is the ground truth written the way the sample's prompt asks: the Qwen2.5-VL JSON
list ``[{"bbox_2d": [x1, y1, x2, y2]}, ...]`` in the sample's frame, as integers for the
``pixel``, ``input`` and ``norm1000`` frames and as fractions with 4 decimals for ``norm1``.
With the ``pixel`` frame (the DiG default; generated boxes are whole pixels) the ``dig``
preset scores it format 1, F1 1 and mIoU 1. In the other frames, rounding to the frame's
units can cost some IoU (tests/tasks/dig/test_dig_traces.py).

``cot=False`` gives the same answer after a short fixed think (:data:`PLAIN_THINK`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from schemas.reward import BoxSolution
from schemas.tasks import TaskSample
from services.reward.scoring.geometry import from_pixels

PLAIN_THINK = (
    "I compare the two images object by object and mark every difference with a box in the "
    "second image."
)
KIND_WORDS = {
    "color": "color",
    "size": "size",
    "material": "material",
    "shape": "shape",
}


def location_phrase(
    box: tuple[float, float, float, float] | list[float], size: tuple[int, int]
) -> str:
    """Coarse location of a pixel box's centre in an image of ``size = (width, height)``.

    Thirds of each axis: columns left / middle / right, rows top / middle / bottom. The
    phrases are "at the top left", "at the top", "at the top right", "on the left",
    "in the centre", "on the right", "at the bottom left", "at the bottom", "at the bottom
    right". A centre on a third's boundary belongs to the later third.
    """
    w, h = size
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    col = min(int(3 * cx / w), 2) if w > 0 else 1
    row = min(int(3 * cy / h), 2) if h > 0 else 1
    col_word = ("left", "", "right")[max(col, 0)]
    row_word = ("top", "", "bottom")[max(row, 0)]
    if row_word and col_word:
        return f"at the {row_word} {col_word}"
    if row_word:
        return f"at the {row_word}"
    if col_word:
        return f"on the {col_word}"
    return "in the centre"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _object_words(attrs: dict[str, Any]) -> str:
    return " ".join(str(attrs[k]) for k in ("size", "color", "material", "shape"))


def describe_difference(diff: dict[str, Any], size: tuple[int, int]) -> str:
    """One sentence for a manifest difference (module docstring); ``size`` of image B.

    Raises ``ValueError`` when the difference lacks what the sentence needs (a manifest from
    a generator before ``dig-gen/2`` has no ``object`` for attribute changes and moves).
    """
    kind = diff.get("kind")
    obj = dict(diff.get("object") or {})
    before, after = diff.get("before") or {}, diff.get("after") or {}
    if not obj:
        obj = dict(after if kind == "add" else before)
    missing = [k for k in ("size", "color", "material", "shape") if k not in obj]
    if missing or "box" not in diff:
        raise ValueError(
            f"difference {diff.get('uid')!r} ({kind}) lacks {missing or ['box']}: regenerate "
            "the data set with this version of the generator (prl data dig)"
        )
    where = location_phrase(diff["box"], size)
    if kind in KIND_WORDS:
        attr = KIND_WORDS[kind]
        obj[attr] = before[attr]  # the object as it was in image A
        new = str(after[attr])
        if kind == "shape":
            return f"The {_object_words(obj)} {where} is now {_article(new)} {new}."
        return f"The {_object_words(obj)} {where} is now {new}."
    if kind == "add":
        return f"{_article(str(obj['size'])).capitalize()} {_object_words(obj)} appeared {where}."
    if kind == "remove":
        return f"The {_object_words(obj)} {where} is gone."
    if kind == "move":
        return f"The {_object_words(obj)} {where} moved."
    raise ValueError(f"unknown difference kind {kind!r}")


def _answer(sample: TaskSample) -> str:
    solution = sample.solution
    assert isinstance(solution, BoxSolution)
    pixels = np.array(solution.boxes, dtype=np.float64).reshape(-1, 4)
    coords = from_pixels(pixels, sample.frame)
    if sample.frame.coords == "norm1":
        rows = [[round(float(v), 4) for v in box] for box in coords]
    else:
        rows = [[round(float(v)) for v in box] for box in coords]
    return json.dumps([{"bbox_2d": box} for box in rows])


def _cot_think(sample: TaskSample) -> str:
    diffs = list(sample.meta.get("differences") or [])
    n_boxes = len(sample.solution.boxes) if isinstance(sample.solution, BoxSolution) else 0
    if len(diffs) != n_boxes:
        raise ValueError(
            f"sample {sample.id}: {len(diffs)} recorded differences for {n_boxes} boxes; a CoT "
            "trace needs the manifest's differences (tasks.dig.task puts them in meta)"
        )
    if not diffs:
        return "Comparing the two images, I find no differences."
    size = sample.frame.image_size
    assert size is not None
    items = " ".join(f"{i}. {describe_difference(d, size)}" for i, d in enumerate(diffs, start=1))
    count = "1 difference" if len(diffs) == 1 else f"{len(diffs)} differences"
    return (
        f"Comparing the two images, I find {count}. {items} I box each of them in the second image."
    )


def sft_completion(sample: TaskSample, *, cot: bool = False, think: str | None = None) -> str:
    """The gold completion ``<think>…</think><answer>…</answer>`` of a DiG sample.

    ``cot=True``: the think lists every difference in words from the scene diff (module
    docstring); ``cot=False``: ``think`` (default :data:`PLAIN_THINK`). The answer is the ground truth in the
    sample's frame and the DiG prompt's JSON dialect, boxes in the order of the differences.
    """
    if not isinstance(sample.solution, BoxSolution):
        raise ValueError(f"sample {sample.id}: DiG traces need a box solution")
    if cot and think is not None:
        raise ValueError("a CoT trace writes its own think; give cot or think, not both")
    if think is not None and ("<think>" in think or "</think>" in think):
        raise ValueError("think is the text inside <think> </think>; leave the tags out")
    think = _cot_think(sample) if cot else (PLAIN_THINK if think is None else think)
    return f"<think>{think}</think><answer>{_answer(sample)}</answer>"
