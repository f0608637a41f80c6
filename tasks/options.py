"""Checking a task's options against what its factory really accepts, before any work.

Task classes forward their named parameters to :class:`tasks.base.BaseTask` through
``**options`` (to hash them), so Python itself accepts any keyword: ``coord=pixel`` for
``coords`` would be kept, hashed and ignored. :func:`check_task_options` collects the named
parameters along the factory's class hierarchy and rejects anything else, with the closest
name, and reports a missing required option by name.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any


class TaskOptionError(ValueError):
    """An option a task does not take, or a required one missing (the message says which)."""


def task_parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """Named keyword parameters of ``factory`` and of every ``__init__`` up its MRO."""
    targets = (
        [c.__init__ for c in inspect.getmro(factory)] if inspect.isclass(factory) else [factory]
    )
    out: dict[str, inspect.Parameter] = {}
    for fn in targets:
        if fn is object.__init__:
            continue
        for name, p in inspect.signature(fn).parameters.items():
            kinds = (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            if name != "self" and p.kind in kinds and name not in out:
                out[name] = p
    return out


def check_task_options(
    task: str,
    factory: Callable[..., Any],
    options: Mapping[str, Any],
    *,
    kind: str = "task",
    flag: str = "--task-opt",
) -> None:
    """Raise :class:`TaskOptionError` for an unknown or a missing required option."""
    params = task_parameters(factory)
    known = sorted(params)
    for name in options:
        if name not in params:
            close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise TaskOptionError(
                f"{kind} {task!r} has no option {name!r}{hint} (options: {', '.join(known)})"
            )
    # only the most derived signature decides what is required (bases get it forwarded)
    first = factory.__init__ if inspect.isclass(factory) else factory
    for name, p in inspect.signature(first).parameters.items():
        if name == "self" or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        if p.default is inspect.Parameter.empty and name not in options:
            raise TaskOptionError(
                f"{kind} {task!r} needs option {name!r} (prl: {flag} {name}=VALUE)"
            )


def describe_options(factory: Callable[..., Any]) -> list[tuple[str, str]]:
    """``(name, default or 'required')`` pairs for ``prl tasks``."""
    first = factory.__init__ if inspect.isclass(factory) else factory
    required = {
        n
        for n, p in inspect.signature(first).parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    out = []
    for name, p in task_parameters(factory).items():
        if name in required:
            out.append((name, "required"))
        elif p.default is not inspect.Parameter.empty:
            out.append((name, repr(p.default)))
    return out
