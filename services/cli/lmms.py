"""``prl bench lmms``: a checkpoint on lmms-eval's tasks, every task's metrics in the store.

    make lmms-env                                   # once: lmms-eval 0.7.3 in .venv-lmms
    prl bench lmms --model out/ckpt --tasks pope,mmvp --limit 200 --device cuda
    prl bench lmms --model out/ckpt --tasks my_task --include-path my_tasks/ --offline

lmms-eval runs in its own venv (:mod:`services.benchmark.lmms.launch`); each task becomes a run
of suite ``lmms-eval/<task>`` (:mod:`services.benchmark.lmms.results`), shown on the
leaderboard beside our own suites. See docs/evaluation.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer

from services.cli._store import db_option
from services.cli.base import bench_app
from services.cli.errors import CliError

_TASK_NAME = re.compile(r"^[\w.\-]+$")


def parse_tasks(text: str) -> list[str]:
    """``"pope, mmvp"`` → ``["pope", "mmvp"]``; refuses empty lists and odd characters."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise CliError("--tasks is empty: give lmms-eval task names, e.g. --tasks pope,mmvp")
    bad = [t for t in names if not _TASK_NAME.match(t)]
    if bad:
        raise CliError(f"--tasks: {bad[0]!r} is not a task name (letters, digits, _ . - only)")
    return list(dict.fromkeys(names))


def model_args_text(pairs: list[str] | None) -> str:
    """``["max_pixels=4096", …]`` → lmms-eval's ``max_pixels=4096,…``."""
    out = []
    for pair in pairs or []:
        if "=" not in pair or "," in pair:
            raise CliError(f"--model-arg {pair!r}: write one key=value per flag (no commas)")
        if pair.split("=", 1)[0].strip() in ("pretrained", "device", "device_map"):
            raise CliError(
                f"--model-arg {pair!r}: set the checkpoint with --model, the device with --device"
            )
        out.append(pair.strip())
    return ",".join(out)


@bench_app.command("lmms")
def lmms(
    model: str = typer.Option(..., help="checkpoint directory (save_pretrained layout)"),
    tasks: str = typer.Option(..., help="comma-separated lmms-eval task names (pope,mmvp,…)"),
    include_path: list[str] = typer.Option(
        None, "--include-path", help="a directory of extra lmms-eval task YAMLs (repeat)"
    ),
    limit: int = typer.Option(None, min=1, help="only the first N documents of each task"),
    batch_size: int = typer.Option(1, min=1, help="lmms-eval batch size"),
    device: str = typer.Option("cpu", help="torch device for the model (cpu, cuda, cuda:0)"),
    backend: str = typer.Option("qwen2_vl", help="lmms-eval model name"),
    model_arg: list[str] = typer.Option(
        None, "--model-arg", help="extra lmms-eval model argument key=value (repeat)"
    ),
    gen_kwargs: str = typer.Option(None, help="generation overrides, lmms-eval's k=v,k=v"),
    name: str = typer.Option(None, help="model name in the store (default: the directory name)"),
    seed: int = typer.Option(0, help="lmms-eval's random, numpy, torch and few-shot seed"),
    offline: bool = typer.Option(
        False, help="tell the HF hub/datasets not to use the network (fail fast on hub data)"
    ),
    python: str = typer.Option(
        None, envvar="PRL_LMMS_PYTHON", help="Python with lmms-eval (default: .venv-lmms)"
    ),
    db: str = db_option(),
    as_json: bool = typer.Option(False, "--json", help="print the stored runs as JSON"),
) -> None:
    """Evaluate a checkpoint with lmms-eval and store every task's metrics (one run per task)."""
    from services.benchmark.adapters.transformers_vlm import _dir_fingerprint
    from services.benchmark.lmms.launch import WorkerCall, find_python, run_worker
    from services.benchmark.lmms.results import LmmsRequest, store_task_runs, task_runs
    from services.benchmark.runner import git_sha
    from services.benchmark.store import SqlRunStore
    from services.common.model_paths import check_model_ref

    names = parse_tasks(tasks)
    extra = model_args_text(model_arg)
    check_model_ref(model)
    for p in include_path or []:
        if not Path(p).expanduser().is_dir():
            raise CliError(f"--include-path {p!r} is not a directory of lmms-eval task YAMLs")
    interpreter = find_python(python)
    store = SqlRunStore(db)  # opened (and migrated) before the long evaluation
    call = WorkerCall(
        model=model,
        tasks=names,
        include_paths=tuple(include_path or ()),
        backend=backend,
        model_args=extra,
        limit=limit,
        batch_size=batch_size,
        device=device,
        gen_kwargs=gen_kwargs,
        seed=seed,
    )
    payload = run_worker(interpreter, call, offline=offline)
    path = str(Path(model).expanduser().resolve())
    request = LmmsRequest(
        model_path=path,
        model_name=name or Path(path).name,
        backend=backend,
        model_args=extra,
        device=device,
        limit=limit,
        gen_kwargs=gen_kwargs,
        batch_size=batch_size,
        seed=seed,
    )
    info = {
        "adapter": f"lmms-eval/{backend}",
        "path": path,
        "revision": _dir_fingerprint(path),
    }
    runs = task_runs(payload, request, model_info=info, git_sha=git_sha())
    summary = store_task_runs(store, runs)
    typer.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


def format_summary(summary: list[dict[str, Any]]) -> str:
    lines = []
    for s in summary:
        lines.append(
            f"run {s['run_id']}  {s['suite']}@{s['version']}  samples {s['n_samples']}  "
            f"key {s['key']}"
        )
        for m in s["metrics"]:
            err = f"  ± {m['stderr']:.4f}" if m.get("stderr") is not None else ""
            arrow = "↑" if m.get("higher_is_better", True) else "↓"
            lines.append(f"  {m['name']:<28} {m['value']:.4f} {arrow}{err}")
    return "\n".join(lines) or "lmms-eval reported no task results"
