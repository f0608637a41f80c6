"""Answer parsing: the last ``<answer>`` block → boxes or a label, or a :class:`ParseError`.

Never raises on model output: every failure is a :class:`ParseError` whose ``code`` is one of
:data:`ERROR_CODES`, reported next to a reward of 0.

Box dialects (docs/rewards.md, "Answers and box dialects"):

* JSON (optionally inside a fenced ``json`` code block): Qwen2.5-VL ``[{"bbox_2d": [...],
  "label": ...}]``, Visual-RFT ``[{"Position": [...], "Confidence": c}]`` (single quotes are
  accepted by turning ``'`` into ``"``, as Visual-RFT does), a bare list ``[x1, y1, x2, y2]``,
  a list of lists, a single object, and ``[]`` (no boxes — a valid answer);
* Qwen2-VL text ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` (with an optional
  ``<|object_ref_start|>label<|object_ref_end|>`` before it) and plain ``(x1,y1),(x2,y2)``;
* otherwise, ``[x1, y1, x2, y2]`` quadruples found in free text.

An answer that *starts* like JSON (``[`` or ``{``) must be valid JSON, so truncated JSON is
``bad_json`` (we do not repair it as Visual-RFT does). Two peer dialects are options of
:func:`parse_boxes`, switched on by the components that reproduce them (a spec's components
declare them, :attr:`~services.reward.scoring.spec.CompiledSpec.parse_options`):
``virft_brackets`` — Visual-RFT's "fix format" step, ``[[`` → ``[`` and ``]]`` → ``]`` in the
answer before parsing; ``whole_completion`` — with no answer block, the whole completion is
the answer (Perception-R1 answers in Qwen2-VL box tokens, without tags). Items may carry a
``point_2d`` ``[x, y]`` (VisionReasoner); a missing or malformed point is None, not an error. Numbers must be finite and within
±:data:`MAX_ABS_COORD`; a box needs exactly four numbers. Inverted boxes are kept (counted in
``BoxAnswer.inverted``; the ``format`` component is then 0 and geometry treats each such box
as zero-area, so it matches nothing).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import lt, or_

import numpy as np
import orjson

from services.reward.scoring.geometry import EMPTY

MAX_ABS_COORD = 1e7
"""Largest accepted |coordinate| in the completion's units (larger = ``bad_number``)."""

ERROR_CODES = {
    "no_answer": "no complete <answer>…</answer> block in the completion",
    "empty_answer": "the <answer> block is empty",
    "bad_json": "the answer starts like JSON but is not valid JSON (truncated?)",
    "no_boxes": "no box in any accepted dialect was found in the answer",
    "bad_box": "a box is not a list of four numbers, or an item has no box key",
    "bad_number": "a coordinate or confidence is not a finite number within range",
    "bad_frame": "coordinates fall outside the range of the declared frame",
    "too_many_boxes": "the answer has more boxes than the service accepts",
}

BOX_KEYS = ("bbox_2d", "Position", "bbox", "box", "position", "bbox2d")
LABEL_KEYS = ("label", "category", "class", "name")
CONF_KEYS = ("Confidence", "confidence", "score")
POINT_KEYS = ("point_2d",)
_BOX_SET, _LABEL_SET, _CONF_SET = frozenset(BOX_KEYS), frozenset(LABEL_KEYS), frozenset(CONF_KEYS)
_POINT_SET = frozenset(POINT_KEYS)
PARSE_OPTIONS = frozenset({"virft_brackets", "whole_completion"})

_OPEN, _CLOSE = "<answer>", "</answer>"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PAIR_RE = re.compile(
    r"(?:<\|object_ref_start\|>(.*?)<\|object_ref_end\|>\s*)?(?:<\|box_start\|>)?\s*"
    rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)",
    re.DOTALL,
)
_QUAD_RE = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_PAREN_QUAD_RE = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\)")
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ParseError:
    code: str
    message: str


@dataclass(slots=True)
class BoxAnswer:
    """Parsed boxes, still in the completion's frame units.

    ``rows``: N lists ``[x1, y1, x2, y2]`` of finite floats/ints; ``boxes``: the same as an
    ``(N, 4)`` float64 array (built lazily, or in bulk by the pipeline); ``labels`` /
    ``confidences`` / ``points``: one entry per box (None where the item had none), or None
    when no item had one; ``inverted``: the number of boxes with x2 < x1 or y2 < y1.
    """

    rows: list[list[float]]
    labels: list[str | None] | None = None
    confidences: list[float | None] | None = None
    points: list[list[float] | None] | None = None
    array: np.ndarray | None = None
    flat: list[float] = field(default_factory=list)
    n_inverted: int | None = None

    @property
    def inverted(self) -> int:
        """Boxes with x2 < x1 or y2 < y1 (counted lazily; the pipeline fills it in bulk)."""
        if self.n_inverted is None:
            f = self.flat
            self.n_inverted = sum(map(or_, map(lt, f[2::4], f[0::4]), map(lt, f[3::4], f[1::4])))
        return self.n_inverted

    @property
    def boxes(self) -> np.ndarray:
        if self.array is None:
            self.array = (
                np.array(self.rows, dtype=np.float64).reshape(-1, 4) if self.rows else EMPTY
            )
        return self.array

    @property
    def n(self) -> int:
        return len(self.rows)


@dataclass(frozen=True, slots=True)
class LabelAnswer:
    text: str


Answer = BoxAnswer | LabelAnswer | ParseError


def extract_answer(completion: str) -> str | None:
    """Contents of the last complete ``<answer>…</answer>`` block (across lines), or None.

    Same as the last match of ``<answer>(.*?)</answer>`` with DOTALL: the last ``</answer>``
    and the nearest ``<answer>`` before it.
    """
    end = completion.rfind(_CLOSE)
    if end < 0:
        return None
    start = completion.rfind(_OPEN, 0, end)
    if start < 0:
        return None
    return completion[start + len(_OPEN) : end]


def parse_label(completion: str, options: frozenset[str] = frozenset()) -> LabelAnswer | ParseError:
    """Classification answer: the stripped contents of the last answer block (never empty);
    with ``whole_completion`` the whole completion when there is no answer block."""
    text = extract_answer(completion)
    if text is None:
        if "whole_completion" not in options:
            return ParseError("no_answer", ERROR_CODES["no_answer"])
        text = completion
    text = text.strip()
    if not text:
        return ParseError("empty_answer", ERROR_CODES["empty_answer"])
    return LabelAnswer(text)


def parse_boxes(
    completion: str, max_boxes: int = 1000, options: frozenset[str] = frozenset()
) -> BoxAnswer | ParseError:
    """Boxes of the last answer block in any accepted dialect (see module docstring);
    ``options``: peer dialects from :data:`PARSE_OPTIONS`."""
    text = extract_answer(completion)
    if text is None:
        if "whole_completion" not in options:
            return ParseError("no_answer", ERROR_CODES["no_answer"])
        text = completion.replace("<|endoftext|>", "")
    if "virft_brackets" in options:
        text = text.replace("[[", "[").replace("]]", "]")
    text = _unfence(text.strip()).strip().rstrip(".").rstrip()
    if not text:
        return ParseError("empty_answer", ERROR_CODES["empty_answer"])
    result = _from_json(text) if text[0] in "[{" else _from_text(text)
    if isinstance(result, BoxAnswer) and result.n > max_boxes:
        return ParseError("too_many_boxes", f"the answer has {result.n} boxes (limit {max_boxes})")
    return result


def parse_boxes_many(
    completions: Sequence[str], max_boxes: int = 1000, options: frozenset[str] = frozenset()
) -> list[BoxAnswer | ParseError]:
    """:func:`parse_boxes` of many completions, the common case in bulk: answers that are
    plain JSON lists of items with one key spelling are checked with one pass over all
    their items; anything else (and a bulk check that
    fails) goes through :func:`parse_boxes` one by one. Same results as :func:`parse_boxes`."""
    out: list[BoxAnswer | ParseError | None] = [None] * len(completions)
    bulk: list[int] = []
    texts: list[str] = []
    for i, c in enumerate(completions):
        end = c.rfind(_CLOSE)
        start = c.rfind(_OPEN, 0, end) if end >= 0 else -1
        text = c[start + len(_OPEN) : end].strip() if start >= 0 else ""
        if (
            text.startswith("[{")
            and text.endswith("}]")
            and not options
            and "'" not in text
            and "```" not in text
            and "point_2d" not in text
        ):
            bulk.append(i)
            texts.append(text)
        else:
            out[i] = parse_boxes(c, max_boxes, options)
    if bulk:
        got = _bulk_items(texts, max_boxes)
        for i, ans in zip(bulk, got, strict=True):
            out[i] = ans if ans is not None else parse_boxes(completions[i], max_boxes, options)
    return out  # type: ignore[return-value]


def _bulk_items(texts: list[str], max_boxes: int) -> list[BoxAnswer | None]:
    """:func:`_fast_items` over many answers at once (each text decoded on its own — a
    joined decode could split or merge crafted answers); all None when the bulk path does
    not apply (the caller then parses each answer on its own)."""
    none: list[BoxAnswer | None] = [None] * len(texts)
    try:
        datas = list(map(orjson.loads, texts))
    except orjson.JSONDecodeError:
        return none
    try:
        sigs = {_keys_of(d[0]) for d in datas}
        if len(sigs) != 1:
            return none
        ((key, lkey, ckey, pkey),) = sigs
        if key is None or pkey is not None:
            return none
        counts = list(map(len, datas))
        if max(counts) > max_boxes:
            return none
        rows = [item[key] for d in datas for item in d]
        labels = None if lkey is None else [item[lkey] for d in datas for item in d]
        confs = None if ckey is None else [item[ckey] for d in datas for item in d]
        if set(map(type, rows)) != {list} or set(map(len, rows)) != {4}:
            return none
        flat = list(chain.from_iterable(rows))
        if not set(map(type, flat)) <= _NUM_TYPES:
            return none
        if confs is not None and not set(map(type, confs)) <= _NUM_TYPES:
            return none
        if labels is not None and not set(map(type, labels)) <= {str}:
            return none
    except (KeyError, TypeError, IndexError):
        return none
    boxes = np.array(flat, dtype=np.float64).reshape(-1, 4)  # = np.array(rows) per answer
    if boxes.max() > MAX_ABS_COORD or boxes.min() < -MAX_ABS_COORD:
        return none
    out: list[BoxAnswer | None] = []
    off = 0
    for n in counts:
        end = off + n
        out.append(
            BoxAnswer(
                rows[off:end],
                None if labels is None else labels[off:end],
                None if confs is None else confs[off:end],
                array=boxes[off:end],
                flat=flat[4 * off : 4 * end],
            )
        )
        off = end
    return out


def _unfence(text: str) -> str:
    if "```" not in text:
        return text
    blocks = _FENCE_RE.findall(text)
    return blocks[-1] if blocks else text.replace("```", "")


def _from_json(text: str) -> BoxAnswer | ParseError:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as first:
        try:
            data = orjson.loads(text.replace("'", '"'))
        except orjson.JSONDecodeError:
            return ParseError("bad_json", f"invalid JSON answer: {first}")
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return ParseError("no_boxes", "the JSON answer is neither a list nor an object")
    if not data:
        return BoxAnswer([])
    if type(data[0]) in _NUM_TYPES and all(_is_number(v) for v in data):
        data = [data]
    return _fast_items(data) or _checked_items(data)


def _fast_items(data: list) -> BoxAnswer | None:
    """The common case in one pass (same key spelling in every item, well-formed numbers);
    None sends the answer to :func:`_checked_items`, which names the first problem."""
    first = data[0]
    points = None
    try:
        if isinstance(first, dict):
            key, lkey, ckey, pkey = _keys_of(first)
            if key is None:
                return None
            rows = [item[key] for item in data]
            labels = None if lkey is None else [item[lkey] for item in data]
            confs = None if ckey is None else [item[ckey] for item in data]
            if pkey is None and len(data) > 1 and any(_POINT_SET.intersection(i) for i in data):
                return None  # points on some items only: item by item
            if pkey is not None:
                points = [item[pkey] for item in data]
                if set(map(type, points)) != {list} or set(map(len, points)) != {2}:
                    return None
                pflat = list(chain.from_iterable(points))
                if not set(map(type, pflat)) <= _NUM_TYPES:
                    return None
                if max(pflat) > MAX_ABS_COORD or min(pflat) < -MAX_ABS_COORD:
                    return None
        else:
            rows, labels, confs = data, None, None
        if set(map(type, rows)) != {list} or set(map(len, rows)) != {4}:
            return None
        flat = list(chain.from_iterable(rows))
        if not set(map(type, flat)) <= _NUM_TYPES:
            return None
        if max(flat) > MAX_ABS_COORD or min(flat) < -MAX_ABS_COORD:
            return None
        if confs is not None and not set(map(type, confs)) <= _NUM_TYPES:
            return None
        if labels is not None and not set(map(type, labels)) <= {str}:
            return None
    except (KeyError, TypeError):
        return None
    ans = _answer(rows, labels, confs, flat)
    if points is not None:
        ans.points = [[float(v) for v in p] for p in points]
    return ans


_KEYS_MEMO: dict[tuple, tuple[str | None, str | None, str | None, str | None]] = {}


def _keys_of(item: dict) -> tuple[str | None, str | None, str | None, str | None]:
    """(box, label, confidence, point) keys of an item, memoised on its key tuple (the items
    of one model's answers share a handful of spellings)."""
    sig = tuple(item)
    got = _KEYS_MEMO.get(sig)
    if got is None:
        if len(_KEYS_MEMO) > 4096:
            _KEYS_MEMO.clear()
        got = _KEYS_MEMO[sig] = (
            _pick(item, _BOX_SET, BOX_KEYS),
            _pick(item, _LABEL_SET, LABEL_KEYS),
            _pick(item, _CONF_SET, CONF_KEYS),
            _pick(item, _POINT_SET, POINT_KEYS),
        )
    return got


def _pick(item: dict, keyset: frozenset[str], order: tuple[str, ...]) -> str | None:
    """The key of ``item`` among ``order`` (first in that order when several are present)."""
    found = keyset.intersection(item)
    if len(found) == 1:
        (key,) = found
        return key
    return next((k for k in order if k in found), None)


def _checked_items(data: list) -> BoxAnswer | ParseError:
    """Item by item, with a precise error for the first bad one."""
    rows: list[list[float]] = []
    labels: list[str | None] = []
    confs: list[float | None] = []
    points: list[list[float] | None] = []
    for i, item in enumerate(data):
        point = None
        if isinstance(item, dict):
            coords = next((item[k] for k in BOX_KEYS if k in item), None)
            if coords is None:
                return ParseError("bad_box", f"item {i} has no box key ({', '.join(BOX_KEYS)})")
            label = next((item[k] for k in LABEL_KEYS if k in item), None)
            conf = next((item[k] for k in CONF_KEYS if k in item), None)
            point = _point(next((item[k] for k in POINT_KEYS if k in item), None))
        else:
            coords, label, conf = item, None, None
        row = _coords(coords, i)
        if isinstance(row, ParseError):
            return row
        if conf is not None:
            if not _is_number(conf) or not math.isfinite(conf):
                return ParseError("bad_number", f"item {i}: confidence {conf!r} is not a number")
            conf = float(conf)
        rows.append(row)
        labels.append(None if label is None else str(label))
        confs.append(conf)
        points.append(point)
    ans = _answer(rows, labels, confs)
    if any(p is not None for p in points):
        ans.points = points
    return ans


def _point(value: object) -> list[float] | None:
    """A ``[x, y]`` of finite numbers within range, else None."""
    if not isinstance(value, list) or len(value) != 2 or not all(map(_is_number, value)):
        return None
    p = [float(v) for v in value]
    return p if all(math.isfinite(v) and abs(v) <= MAX_ABS_COORD for v in p) else None


def _from_text(text: str) -> BoxAnswer | ParseError:
    pairs = _PAIR_RE.findall(text)
    if pairs:
        rows = [[float(v) for v in p[1:]] for p in pairs]
        labels: list[str | None] = [p[0].strip() or None for p in pairs]
    else:
        quads = _QUAD_RE.findall(text) or _PAREN_QUAD_RE.findall(text)
        if not quads:
            return ParseError("no_boxes", ERROR_CODES["no_boxes"])
        rows = [[float(v) for v in q] for q in quads]
        labels = [None] * len(rows)
    for i, row in enumerate(rows):
        bad = _check_numbers(row, i)
        if bad is not None:
            return bad
    return _answer(rows, labels, [None] * len(rows))


def _coords(value: object, i: int) -> list[float] | ParseError:
    if not isinstance(value, list) or len(value) != 4:
        return ParseError("bad_box", f"item {i}: a box needs four numbers, got {value!r:.60}")
    if not all(_is_number(v) for v in value):
        return ParseError("bad_number", f"item {i}: box {value!r:.60} has a non-number")
    row = [float(v) for v in value]
    bad = _check_numbers(row, i)
    return bad if bad is not None else row


def _check_numbers(row: list[float], i: int) -> ParseError | None:
    for v in row:
        if not math.isfinite(v) or abs(v) > MAX_ABS_COORD:
            return ParseError(
                "bad_number",
                f"item {i}: coordinate {v!r} is not finite or exceeds ±{MAX_ABS_COORD:g}",
            )
    return None


_NUM_TYPES = {int, float}


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _answer(
    rows: list[list[float]],
    labels: list | None,
    confs: list | None,
    flat: list[float] | None = None,
) -> BoxAnswer:
    """Build the answer; ``flat`` given means the fast path already checked every value."""
    if flat is None:
        flat = [v for r in rows for v in r]
        if labels is not None and all(v is None for v in labels):
            labels = None
        if confs is not None and all(v is None for v in confs):
            confs = None
    return BoxAnswer(rows, labels, confs, flat=flat)
