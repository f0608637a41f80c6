"""Errors a loader raises for malformed dataset files: they name the file and the field."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A dataset file is not in the format its loader reads.

    The message reads ``<file>: <field>: <problem>``, e.g.
    ``instances_val.json: annotations[3].bbox: expected [x, y, w, h] with w, h >= 0``.
    """

    def __init__(self, file: str | Path, field: str, problem: str) -> None:
        self.file, self.field, self.problem = str(file), field, problem
        super().__init__(f"{self.file}: {field}: {problem}")


class UnknownSplitError(ValueError):
    """A task was asked for a split it does not have."""

    def __init__(self, task: str, split: str, known: list[str]) -> None:
        self.task, self.split, self.known = task, split, known
        super().__init__(
            f"task {task!r} has no split {split!r} (available: {', '.join(known) or 'none'})"
        )
