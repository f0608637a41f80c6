"""Reading dataset files with errors that name the file and the field."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tasks.errors import DataFormatError

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    list: "a list",
    dict: "an object",
}


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing or malformed file raises :class:`DataFormatError`."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "<file>", "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, "<json>", f"not valid JSON ({exc})") from None


def load_jsonl(path: str | Path) -> list[Any]:
    """Parse a JSON-lines file (blank lines skipped); errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "<file>", "file not found")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, f"line {number}", f"not valid JSON ({exc})") from None
    return rows


def get(obj: Any, key: str, kind: type | tuple[type, ...], file: str | Path, where: str) -> Any:
    """``obj[key]`` checked to be of ``kind`` (bool is never a number)."""
    path = f"{where}.{key}" if where else key
    if not isinstance(obj, dict):
        raise DataFormatError(file, where or "<root>", "expected a JSON object")
    if key not in obj:
        raise DataFormatError(file, path, "missing")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise DataFormatError(file, path, f"expected {names}, got {type(value).__name__}")
    return value


def numbers(value: Any, n: int, file: str | Path, where: str) -> list[float]:
    """A list of exactly ``n`` finite numbers."""
    if (
        not isinstance(value, list | tuple)
        or len(value) != n
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
    ):
        raise DataFormatError(file, where, f"expected a list of {n} finite numbers, got {value!r}")
    return [float(v) for v in value]


def xywh_to_xyxy(value: Any, file: str | Path, where: str) -> tuple[float, float, float, float]:
    """COCO ``[x, y, w, h]`` → ``[x1, y1, x2, y2]`` (``w, h >= 0``)."""
    x, y, w, h = numbers(value, 4, file, where)
    if w < 0 or h < 0:
        raise DataFormatError(file, where, f"expected [x, y, w, h] with w, h >= 0, got {value!r}")
    return (x, y, x + w, y + h)


def xyxy(value: Any, file: str | Path, where: str) -> tuple[float, float, float, float]:
    """``[x1, y1, x2, y2]`` with ``x1 <= x2`` and ``y1 <= y2``."""
    x1, y1, x2, y2 = numbers(value, 4, file, where)
    if x2 < x1 or y2 < y1:
        raise DataFormatError(
            file, where, f"expected [x1, y1, x2, y2] with x1 <= x2, y1 <= y2, got {value!r}"
        )
    return (x1, y1, x2, y2)
