"""The copy-paste recipes of docs/clients.md, read back for the tests that run them as written.

A recipe is the first fenced block after a ``<!-- recipe: NAME -->`` line.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[1] / "docs" / "clients.md"


def recipe(name: str) -> str:
    """The text of recipe ``name`` (``KeyError`` if the docs lost it)."""
    text = DOC.read_text()
    m = re.search(rf"<!-- recipe: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    if m is None:
        raise KeyError(f"docs/clients.md has no recipe {name!r}")
    return m.group(1)


def label_rows() -> list[dict[str, Any]]:
    """The rows of the ``labels`` recipe (JSONL)."""
    return [json.loads(line) for line in recipe("labels").splitlines() if line.strip()]


def commands(name: str) -> list[list[str]]:
    """The shell commands of a bash recipe, continuation lines joined, split as the shell
    would (``$(...)`` kept as one word)."""
    joined = recipe(name).replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(shlex.split(line))
    return out


def exports(name: str) -> dict[str, str]:
    """``export A=B C=D`` lines of a bash recipe as a dict."""
    env: dict[str, str] = {}
    for cmd in commands(name):
        if cmd[0] == "export":
            env.update(dict(word.split("=", 1) for word in cmd[1:]))
    return env


def flag(cmd: list[str], name: str) -> str:
    """The value after ``--name`` in a command."""
    return cmd[cmd.index(name) + 1]
