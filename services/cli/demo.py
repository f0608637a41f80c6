"""``prl demo``: the main job, end to end (see :mod:`services.demo`)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import typer

from services.cli.base import app


@app.command("demo")
def demo(
    workdir: Path = typer.Option(
        Path("demo-out"), help="models, data, SQLite store, runs and logs"
    ),
    model: Path | None = typer.Option(
        None, help="a real Qwen2-VL checkpoint (GPU); default: tiny random"
    ),
    steps: int = typer.Option(3, min=1, help="GRPO steps"),
    n_train: int = typer.Option(24, min=4, help="DiG training pairs"),
    n_eval: int = typer.Option(12, min=2, help="DiG eval pairs"),
    launch: str = typer.Option(
        "cpu", help="accelerate config: cpu | single_gpu | ddp | zero2 | zero3 | fsdp"
    ),
    keep_serving: bool = typer.Option(
        False, help="keep the stack up after the run (Ctrl-C stops it)"
    ),
) -> None:
    """Models, DiG data, services, GRPO+DEVA training, benchmarks and the leaderboard."""
    import logging

    from services.demo import DemoConfig, format_leaderboard, run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if keep_serving is None:
        keep_serving = sys.stdin.isatty() and sys.stdout.isatty()
    cfg = DemoConfig(
        workdir=workdir.resolve(),
        model=model,
        steps=steps,
        n_train=n_train,
        n_eval=n_eval,
        launch=launch,
        keep_serving=keep_serving,
    )
    result = run_demo(cfg)
    typer.echo("")
    for name, run in result.runs.items():
        shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(run["metrics"].items()))
        align = run.get("alignment_mean")
        shown += (
            f", alignment={align:.3f}"
            if align is not None
            else ", alignment=n/a (no parsable answer)"
        )
        typer.echo(f"{name:<19} run {run['run_id']}: {shown}")
    typer.echo(
        f"training job {result.job['id']}: {result.job['status']} at step {result.job['step']}"
    )
    typer.echo(format_leaderboard(result.leaderboard))
    page = f"{result.urls['leaderboard']}/"
    typer.echo(
        f"\nleaderboard page: {page}   (finished in {result.seconds:.0f} s; store: {cfg.workdir / 'prl.sqlite'})"
    )
    if result.stack is None:
        typer.echo(
            f"the stack has stopped; to browse again: PRL_DATABASE_URL=sqlite:///{cfg.workdir / 'prl.sqlite'} prl serve leaderboard"
        )
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo("serving (Ctrl-C stops every service)")
    stop.wait()
    result.stack.stop()
