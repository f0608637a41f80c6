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
    quick: bool = typer.Option(
        False, help="fast path (~2 min): same phases at toy sizes; nothing learns"
    ),
    launch: str = typer.Option(
        "cpu", help="accelerate config: cpu | single_gpu | ddp | zero2 | zero3 | fsdp"
    ),
    keep_serving: bool = typer.Option(
        False, help="keep the stack up after the run (Ctrl-C stops it)"
    ),
) -> None:
    """Models, DiG data, services, SFT then GRPO + DEVA training, benchmarks, leaderboard."""
    import logging
    from typing import get_args

    from schemas.jobs import LaunchProfile
    from services.cli.errors import CliError
    from services.demo import DemoConfig, format_leaderboard, format_learning, run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if keep_serving is None:
        keep_serving = sys.stdin.isatty() and sys.stdout.isatty()
    profiles = get_args(LaunchProfile)
    if launch not in profiles:
        raise CliError(f"--launch: unknown profile {launch!r}; choose one of {', '.join(profiles)}")
    options = {"model": model, "launch": launch, "keep_serving": keep_serving}
    if quick:
        cfg = DemoConfig.quick(workdir.resolve(), **options)
    else:
        cfg = DemoConfig(workdir=workdir.resolve(), **options)
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
    for kind, job in result.jobs.items():
        typer.echo(f"training job {job['id']} ({kind}): {job['status']} at step {job['step']}")
    typer.echo(format_leaderboard(result.leaderboard))
    typer.echo(format_learning(result.learning))
    page = f"{result.urls['leaderboard']}/"
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items())
    typer.echo(f"\nleaderboard page: {page}   (store: {cfg.workdir / 'prl.sqlite'})")
    typer.echo(f"demo time: {result.seconds:.0f} s ({phases})")
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
