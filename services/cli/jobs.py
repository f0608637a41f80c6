"""``prl jobs submit|list|show|logs|cancel``: trainer-service jobs over :class:`TrainerClient`.

The service is ``--trainer-url`` (default ``PRL_TRAINER_URL`` or http://127.0.0.1:8004, the
port ``prl up`` and ``prl serve trainer`` use); submit and cancel need a write key
(``PRL_API_KEY``; the local stack accepts ``prl-dev-key``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from services.cli.base import app

jobs_app = typer.Typer(no_args_is_help=True, help="Training jobs on the trainer service.")
app.add_typer(jobs_app, name="jobs")

URL = typer.Option(None, "--trainer-url", envvar="PRL_TRAINER_URL", help="trainer service URL")
KEY = typer.Option(None, "--api-key", envvar="PRL_API_KEY", help="API key (write for submit)")
AS_JSON = typer.Option(False, "--json", help="print as JSON")


def _client(url: str | None, api_key: str | None):  # type: ignore[no-untyped-def]
    import logging

    from clients.retry import RetryPolicy
    from clients.trainer import TrainerClient

    logging.getLogger("clients").setLevel(logging.ERROR)  # one error line, not every retry
    return TrainerClient(url, api_key=api_key, retry=RetryPolicy(max_retries=1))


def _line(job: Any) -> str:
    step = "-" if job.step is None else str(job.step)
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(job.latest_metrics.items())[:4])
    return f"{job.id:>5}  {job.status:<10} step {step:<5} {job.name}  {metrics}"


def _show(job: Any, as_json: bool) -> None:
    typer.echo(job.model_dump_json(indent=2) if as_json else _line(job))


@jobs_app.command("submit")
def submit(
    config: Path = typer.Option(..., exists=True, dir_okay=False, help="run config (YAML)"),
    name: str = typer.Option("job", help="job name"),
    launch: str = typer.Option("cpu", help="launch profile: cpu, cpu_ddp, single_gpu, ddp, …"),
    num_processes: int = typer.Option(1, min=1, help="processes (GPUs) for the launcher"),
    wait: bool = typer.Option(False, help="wait until the job ends"),
    url: str | None = URL,
    api_key: str | None = KEY,
    as_json: bool = AS_JSON,
) -> None:
    """Validate a run config here (reward preset, model path), then submit it."""
    from typing import get_args

    from schemas.jobs import LaunchProfile
    from trainer.config import load_config
    from trainer.preflight import check_reward

    profiles = get_args(LaunchProfile)
    if launch not in profiles:
        raise typer.BadParameter(
            f"{launch!r}: use one of {', '.join(profiles)}", param_hint="--launch"
        )
    cfg = load_config(config)
    check_reward(cfg.reward.reward)
    with _client(url, api_key) as tc:
        job = tc.submit(
            cfg.model_dump(mode="json"), name=name, launch=launch, num_processes=num_processes
        )  # type: ignore[arg-type]
        if wait:
            job = tc.wait(job.id)
    _show(job, as_json)


@jobs_app.command("list")
def list_jobs(
    limit: int = typer.Option(20, min=1, help="newest N jobs"),
    url: str | None = URL,
    api_key: str | None = KEY,
    as_json: bool = AS_JSON,
) -> None:
    """Jobs, newest first."""
    with _client(url, api_key) as tc:
        page = tc.jobs(limit=limit)
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
        return
    if not page.jobs:
        typer.echo("no jobs yet: submit one with `prl jobs submit --config FILE.yaml`")
    for job in page.jobs:
        typer.echo(_line(job))


@jobs_app.command("show")
def show(
    job_id: int = typer.Argument(..., help="job id"),
    url: str | None = URL,
    api_key: str | None = KEY,
    as_json: bool = AS_JSON,
) -> None:
    """One job's status, step and latest metrics."""
    with _client(url, api_key) as tc:
        job = tc.job(job_id)
    if as_json:
        _show(job, True)
        return
    typer.echo(_line(job))
    if job.message:
        typer.echo(f"  message: {job.message}")
    for k, v in sorted(job.latest_metrics.items()):
        typer.echo(f"  {k:<32} {v:.6g}")


@jobs_app.command("logs")
def logs(
    job_id: int = typer.Argument(..., help="job id"),
    lines: int = typer.Option(200, min=1, help="last N lines"),
    follow: bool = typer.Option(False, "--follow", "-f", help="poll until the job ends"),
    url: str | None = URL,
    api_key: str | None = KEY,
) -> None:
    """The job's log (``--follow`` prints new lines until it ends)."""
    with _client(url, api_key) as tc:
        seen = tc.logs(job_id, lines=lines)
        typer.echo(seen, nl=False)
        while follow and tc.job(job_id).status in ("pending", "running"):
            time.sleep(1.0)
            text = tc.logs(job_id, lines=10_000)
            new = text[len(seen) :] if text.startswith(seen) else text
            typer.echo(new, nl=False)
            seen = text


@jobs_app.command("cancel")
def cancel(
    job_id: int = typer.Argument(..., help="job id"),
    url: str | None = URL,
    api_key: str | None = KEY,
    as_json: bool = AS_JSON,
) -> None:
    """Cancel a pending or running job."""
    with _client(url, api_key) as tc:
        _show(tc.cancel(job_id), as_json)
