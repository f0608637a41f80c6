"""The process that runs lmms-eval, inside ``.venv-lmms`` (``prl bench lmms`` starts it).

    .venv-lmms/bin/python -m services.benchmark.lmms.worker --model CKPT --tasks pope,mmvp \\
        --output results.json [--include-path DIR] [--limit N] [--device cpu]

It checks every task name against lmms-eval's own ``TaskManager`` (so a typo fails before the
model loads), then calls ``lmms_eval.evaluator.simple_evaluate`` — the function lmms-eval's CLI
calls — with lmms-eval's ``qwen2_vl`` model (or ``--backend``) on the checkpoint, and writes the
returned results dict as JSON: lmms-eval's own keys (``results``, ``configs``, ``versions``,
``higher_is_better``, ``n-samples``, ``samples``, ``lmms_eval_version``, ``date``, ``config``),
each sample without its ``doc`` (documents may hold images), plus ``prl_lib_versions`` (the
libraries of this venv). Nothing is stored here: the caller maps the file into the SQL store
(:mod:`services.benchmark.lmms.results`).

A mistake the user can fix (an unknown task name, a task file lmms-eval cannot read) is written
to ``--output`` as ``{"error": "<one line>"}`` with exit code 2.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from pathlib import Path
from typing import Any

EXIT_USER_ERROR = 2


class WorkerUserError(Exception):
    """A mistake in the request (the message says what to fix)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m services.benchmark.lmms.worker")
    p.add_argument("--model", required=True, help="checkpoint directory")
    p.add_argument("--backend", default="qwen2_vl", help="lmms-eval model name")
    p.add_argument("--model-args", default="", help="extra lmms-eval model_args (k=v,k=v)")
    p.add_argument("--tasks", required=True, help="comma-separated lmms-eval task names")
    p.add_argument("--include-path", action="append", default=[], help="extra task YAML dir")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--gen-kwargs", default=None, help="generation overrides (k=v,k=v)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap-iters", type=int, default=1000)
    p.add_argument("--output", required=True, help="where to write the results JSON")
    p.add_argument("--quiet", action="store_true", help="an error goes to --output only")
    return p.parse_args(argv)


def check_tasks(names: list[str], known: list[str]) -> None:
    """Raise :class:`WorkerUserError` naming every unknown task (with the closest known)."""
    unknown = [n for n in names if n not in set(known)]
    if not unknown:
        return
    parts = []
    for n in unknown:
        close = difflib.get_close_matches(n, known, n=1)
        parts.append(f"{n!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise WorkerUserError(
        f"unknown lmms-eval task {', '.join(parts)}: names come from lmms-eval's task registry "
        "and the YAML files under --include-path"
    )


def model_args(model: str, device: str, extra: str) -> str:
    """lmms-eval's ``key=value,…`` string: the checkpoint, ``device_map`` (so
    ``from_pretrained`` places the weights on ``device``; ``device`` itself reaches the model
    through ``simple_evaluate(device=…)``), then the user's extra arguments."""
    base = f"pretrained={model},device_map={device}"
    return f"{base},{extra}" if extra else base


def slim(results: dict[str, Any]) -> dict[str, Any]:
    """The results without each sample's ``doc`` (it may hold PIL images or large arrays)."""
    out = dict(results)
    samples = out.get("samples") or {}
    out["samples"] = {
        task: [{k: v for k, v in s.items() if k != "doc"} for s in rows]
        for task, rows in samples.items()
    }
    return out


def venv_versions() -> dict[str, str]:
    from services.common.provenance import LIB_NAMES, lib_versions

    return lib_versions((*LIB_NAMES, "lmms_eval", "torchvision", "datasets", "decord"))


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    include = [str(Path(p).resolve()) for p in args.include_path] or None
    manager = TaskManager("WARNING", include_path=include)
    check_tasks(names, manager.all_tasks)
    results = simple_evaluate(
        model=args.backend,
        model_args=model_args(args.model, args.device, args.model_args),
        tasks=names,
        limit=args.limit,
        batch_size=args.batch_size,
        device=args.device,
        gen_kwargs=args.gen_kwargs,
        task_manager=manager,
        log_samples=True,
        bootstrap_iters=args.bootstrap_iters,
        random_seed=args.seed,
        numpy_random_seed=args.seed,
        torch_random_seed=args.seed,
        fewshot_random_seed=args.seed,
        verbosity="WARNING",
    )
    if results is None:  # only a non-zero rank returns None; this process is rank 0
        raise RuntimeError("lmms-eval returned no results")
    out = slim(results)
    out["prl_lib_versions"] = venv_versions()
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = Path(args.output)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        payload = evaluate(args)
        code = 0
    except WorkerUserError as exc:
        payload, code = {"error": str(exc)}, EXIT_USER_ERROR
    output.write_text(json.dumps(payload, default=str))
    if code and not args.quiet:
        sys.stderr.write(f"error: {payload['error']}\n")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
