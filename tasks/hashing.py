"""Content hashes that identify a dataset version (recorded with every result row)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def json_sha256(obj: Any) -> str:
    """Hex SHA-256 of canonical JSON (sorted keys, no whitespace, UTF-8)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def combine(parts: Iterable[str]) -> str:
    """Hash of an ordered sequence of hashes/strings (``sha256("\\n".join(parts))``)."""
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
