"""Predictions JSONL file: score completions produced elsewhere (another harness, a server).

One JSON object per line with the sample ``id`` and its ``completion`` (alias keys:
``sample_id`` / ``prediction`` / ``response``). Duplicate ids keep the first line. A request
whose id has no line raises, naming up to five missing ids, rather than scoring an empty
answer as a silent 0.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.benchmark.adapters.base import GenerationRequest, adapters

ID_KEYS = ("id", "sample_id")
TEXT_KEYS = ("completion", "prediction", "response")


def read_predictions(path: str | Path) -> dict[str, str]:
    """``{sample id: completion}`` from a JSONL file (blank lines skipped)."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            sid = next((row[k] for k in ID_KEYS if k in row), None)
            text = next((row[k] for k in TEXT_KEYS if k in row), None)
            if sid is None or not isinstance(text, str):
                raise ValueError(f"{path}:{n}: needs an 'id' and a string 'completion'")
            out.setdefault(str(sid), text)
    return out


@adapters.register("predictions")
class PredictionsFile:
    def __init__(self, path: str, *, name: str | None = None) -> None:
        self.path = str(path)
        self.name = name or Path(self.path).stem
        self.table = read_predictions(self.path)
        self._sha = hashlib.sha256(Path(self.path).read_bytes()).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            "adapter": "predictions",
            "path": self.path,
            "revision": self._sha[:16],
            "n": len(self.table),
        }

    def input_size(self, image_size: tuple[int, int]) -> tuple[int, int] | None:
        return None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        missing = [r.id for r in requests if r.id not in self.table]
        if missing:
            raise KeyError(
                f"{self.path} has no prediction for {len(missing)} sample(s), e.g. {missing[:5]}"
            )
        return [self.table[r.id] for r in requests]
