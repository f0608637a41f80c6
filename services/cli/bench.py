"""``prl bench run`` and ``prl bench show``: resumable benchmark runs stored in the SQL store.

    prl bench run --task dig --task-opt root=data/dig --model out/tiny --batch-size 4
    prl bench run --task refcoco --adapter openai --model Qwen2.5-VL-7B \\
        --adapter-opt base_url=http://gpu:8000/v1 --reward-url http://localhost:8001
    prl bench run --task dig --task-opt root=data/dig --adapter predictions --model preds.jsonl
    prl bench show --key <run key>

Re-running the same command resumes the run (same key): stored samples are skipped.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import typer

from services.cli._store import db_option, open_store
from services.cli.base import bench_app


def parse_opts(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """``["k=v", ...]`` → dict; values are read as JSON when they parse (numbers, booleans,
    lists), else kept as strings."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(f"{what} {pair!r}: write it as key=value")
        k, v = pair.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def adapter_options(
    adapter: str, model: str | None, opts: dict[str, Any], max_new_tokens: int | None
) -> dict[str, Any]:
    """``--model`` is the adapter's model (``path`` for the predictions file)."""
    out = dict(opts)
    if model is not None:
        out.setdefault("path" if adapter == "predictions" else "model", model)
    if max_new_tokens is not None and adapter in ("transformers", "vllm"):
        out.setdefault("max_new_tokens", max_new_tokens)
    if max_new_tokens is not None and adapter == "openai":
        out.setdefault("max_tokens", max_new_tokens)
    return out


def check_before_loading(adapter: str, a_opts: dict[str, Any], reward: str | None) -> None:
    """What can be checked before a model loads: the reward preset, the adapter's options,
    and that a local model path or predictions file exists (never a hub lookup for a typo)."""
    from services.benchmark.adapters import adapter_names, adapters
    from services.common.model_paths import check_model_ref
    from services.reward.scoring import resolve_reward
    from tasks.options import check_task_options

    if reward is not None:
        resolve_reward(reward)
    adapter_names()  # registers the built-in adapters
    factory = adapters.get(adapter)
    if adapter != "vllm":  # vLLM forwards unknown options to its engine (LLM(**kwargs))
        check_task_options(adapter, factory, a_opts, kind="adapter", flag="--adapter-opt")
    if adapter in ("transformers", "vllm") and a_opts.get("model"):
        check_model_ref(str(a_opts["model"]))
    if adapter == "predictions" and a_opts.get("path"):
        from pathlib import Path

        if not Path(str(a_opts["path"])).is_file():
            raise FileNotFoundError(
                f"predictions file {a_opts['path']!r} does not exist (one JSON object per line: "
                '{"id": "<sample id>", "completion": "<model output>"})'
            )


@bench_app.command("run")
def run(
    task: str = typer.Option(..., help="task name (tasks registry)"),
    task_opt: list[str] = typer.Option(None, "--task-opt", help="task option key=value (repeat)"),
    split: str = typer.Option(None, help="task split (default: the task's)"),
    model: str = typer.Option(None, help="model path / served model name / predictions file"),
    adapter: str = typer.Option("transformers", help="transformers | vllm | openai | predictions"),
    adapter_opt: list[str] = typer.Option(None, "--adapter-opt", help="adapter option key=value"),
    max_new_tokens: int = typer.Option(None, help="generation length limit"),
    db: str = db_option(),
    key: str = typer.Option(None, help="run key (default: derived from model, task and config)"),
    batch_size: int = typer.Option(8, min=1, help="requests per generation batch"),
    limit: int = typer.Option(None, min=1, help="only the first N samples"),
    seed: int = typer.Option(0, help="seed (bootstrap; recorded with the run)"),
    n_boot: int = typer.Option(1000, min=0, help="bootstrap resamples for confidence intervals"),
    reward: str = typer.Option(None, help="reward preset (default: the task's)"),
    metric: list[str] = typer.Option(None, "--metric", help="extra metric to report (repeat)"),
    reward_url: str = typer.Option(
        None, help="score through this reward service (else in-process)"
    ),
    api_key: str = typer.Option(None, envvar="PRL_API_KEY", help="API key for the reward service"),
    send_images: bool = typer.Option(False, help="send image paths to the reward (alignment)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Run (or resume) a benchmark and store per-sample predictions and metrics."""
    from services.benchmark.adapters import get_adapter
    from services.benchmark.runner import RunOptions, run_benchmark
    from services.benchmark.scoring import HttpScorer, InProcessScorer
    from services.benchmark.store import SqlRunStore
    from tasks.registry import get_task

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    t_opts = parse_opts(task_opt, "--task-opt")
    a_opts = adapter_options(
        adapter, model, parse_opts(adapter_opt, "--adapter-opt"), max_new_tokens
    )
    the_task = get_task(task, **t_opts)
    check_before_loading(adapter, a_opts, reward)
    the_adapter = get_adapter(adapter, **a_opts)
    scorer = HttpScorer(reward_url, api_key=api_key) if reward_url else InProcessScorer()
    options = RunOptions(
        key=key,
        split=split,
        limit=limit,
        batch_size=batch_size,
        seed=seed,
        n_boot=n_boot,
        reward=reward,
        metrics=tuple(metric or ()),
        send_images=send_images,
        progress=progress,
    )
    result = run_benchmark(
        the_task, the_adapter, store=SqlRunStore(db), scorer=scorer, options=options
    )
    payload = {
        "run_id": result.run_id,
        "key": result.key,
        "n_samples": result.n_samples,
        "n_new": result.n_new,
        "metrics": [m.as_dict() for m in result.metrics],
    }
    typer.echo(json.dumps(payload, indent=2) if as_json else format_metrics(payload))


def format_metrics(payload: dict[str, Any]) -> str:
    lines = [
        f"run {payload['run_id']}  key {payload['key']}  samples {payload['n_samples']} "
        f"(new {payload['n_new']})"
    ]
    for m in payload["metrics"]:
        ci = ""
        if m.get("ci_low") is not None:
            ci = f"  [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"
        arrow = "↑" if m.get("higher_is_better", True) else "↓"
        lines.append(f"  {m['name']:<28} {m['value']:.4f} {arrow}{ci}")
    return "\n".join(lines)


@bench_app.command("show")
def show(
    key: str = typer.Option(None, help="run key"),
    run_id: int = typer.Option(None, "--run", help="run id"),
    db: str = db_option(),
    as_json: bool = typer.Option(False, "--json", help="print as JSON"),
    last: int = typer.Option(20, help="without --key/--run: list this many recent runs"),
) -> None:
    """Show one run's metrics (by key or id), or list the most recent runs."""
    from services.benchmark.show import list_runs, run_summary
    from services.store.db import transaction

    factory = open_store(db)
    with transaction(factory) as s:
        if key is None and run_id is None:
            rows = list_runs(s, last)
            if not rows and not as_json:
                typer.echo("no runs stored yet: start one with `prl bench run` (see --help)")
            if as_json:
                typer.echo(json.dumps(rows, indent=2, default=str))
            else:
                for r in rows:
                    typer.echo(
                        f"{r['id']:>5}  {r['status']:<10} {r['suite']}@{r['version']:<6} {r['model']:<24} "
                        f"{r['done']}/{r['n_samples']}  {r['key']}"
                    )
            return
        summary = run_summary(s, key=key, run_id=run_id)
    if summary is None:
        typer.echo(f"no run with {'key ' + key if key else 'id ' + str(run_id)}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(summary, indent=2, default=str) if as_json else format_show(summary))


def format_show(s: dict[str, Any]) -> str:
    head = (
        f"run {s['id']}  {s['status']}  {s['suite']}@{s['version']}  model {s['model']}\n"
        f"  key {s['key']}  samples {s['done']}/{s['n_samples']}"
    )
    return (
        head
        + "\n"
        + "\n".join(format_metrics({**s, "run_id": s["id"], "n_new": 0}).splitlines()[1:])
    )
