"""Telling a local checkpoint path from a Hugging Face hub id, before anything is loaded.

``from_pretrained("out/tiny")`` on a directory that does not exist asks the hub for a repo
``out/tiny`` and retries for minutes. :func:`check_model_ref` refuses, at once, a reference
that looks local and is not there, and a local directory without a ``config.json``.

A reference *looks local* when it is absolute, starts with ``.`` or ``~``, ends with a
separator, has more than two components (a hub id is ``name`` or ``org/name``), or its first
component exists here (``out/tiny`` when ``out/`` exists). ``org/name`` otherwise is a hub id.
"""

from __future__ import annotations

from pathlib import Path


class ModelPathError(FileNotFoundError):
    """A local-looking model path that does not exist or is not a checkpoint."""


def looks_local(ref: str) -> bool:
    if not ref:
        return True
    if ref.startswith(("/", ".", "~")) or ref.endswith(("/", "\\")) or "\\" in ref:
        return True
    parts = [p for p in ref.split("/") if p]
    return len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).exists())


def check_model_ref(ref: str | Path, *, hint: str = "") -> None:
    """Raise :class:`ModelPathError` for a missing local checkpoint (never a hub lookup)."""
    text = str(ref)
    path = Path(text).expanduser()
    build = hint or "build a tiny one with `prl models tiny --kind qwen2vl --out DIR`"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelPathError(
                f"model directory {text!r} has no config.json: point at a saved checkpoint "
                f"(save_pretrained output) or {build}"
            )
        return
    if path.exists():
        raise ModelPathError(f"model path {text!r} is a file, not a checkpoint directory")
    if looks_local(text):
        raise ModelPathError(
            f"model path {text!r} does not exist: {build}, or give a Hugging Face id "
            "such as 'Qwen/Qwen2.5-VL-3B-Instruct'"
        )
