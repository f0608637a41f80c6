"""Job supervision for the trainer service (pure of HTTP; the routes in ``trainer.service`` are thin).

A job's life: ``submit`` validates the run config, writes ``RUN_DIR/config.json`` and a
``pending`` row in the store; ``tick`` (called every ``poll_interval_s``) starts pending jobs
while fewer than ``max_running`` run, ingests new lines of ``RUN_DIR/metrics.jsonl`` into
``training_metrics`` (idempotent per (job, step, name)), and finalises jobs whose wrapper wrote
``exit_code``. ``recover`` (service start) re-attaches to jobs whose wrapper still runs and
marks the others failed with the reason — a restart never loses a job's state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from schemas.jobs import JobSubmit, JobView
from services.common.provenance import code_revision, lib_versions
from services.store import repository as repo
from services.store.models import TrainingJob, TrainingMetric
from trainer.jobs.wrapper import write_atomic

log = logging.getLogger(__name__)

ACCELERATE_CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "accelerate"
ACTIVE = ("pending", "running")


@dataclass(frozen=True)
class JobPaths:
    """Where one job keeps its files: ``<runs_dir>/job-<id>/``."""

    root: Path
    job_id: int

    @property
    def dir(self) -> Path:
        return self.root / f"job-{self.job_id}"

    config = property(lambda self: self.dir / "config.json")
    log = property(lambda self: self.dir / "train.log")
    metrics = property(lambda self: self.dir / "metrics.jsonl")  # written by the trainer
    exit_code = property(lambda self: self.dir / "exit_code")  # written by the wrapper at the end
    pid = property(lambda self: self.dir / "wrapper.pid")
    cancel = property(lambda self: self.dir / "cancel_requested")
    launch = property(lambda self: self.dir / "launch.json")


def launcher(launch: str, num_processes: int) -> list[str]:
    """The launch prefix for a profile.

    GPU profiles use ``accelerate launch`` with a shipped config. ``cpu_ddp`` uses torchrun with
    ``ACCELERATE_USE_CPU=true`` (accelerate then sets up MULTI_CPU on gloo): ``accelerate
    launch`` sends any CPU config to its single-process launcher, so it cannot start CPU DDP.
    """
    if launch == "cpu_ddp":
        return ["/usr/bin/env", "ACCELERATE_USE_CPU=true", sys.executable, "-m",
                "torch.distributed.run", "--nproc_per_node", str(num_processes)]  # fmt: skip
    return [sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(ACCELERATE_CONFIGS / f"{launch}.yaml"),
            "--num_processes", str(num_processes)]  # fmt: skip


def train_command(paths: JobPaths, launch: str, num_processes: int) -> list[str]:
    """``prl train`` on the job's config and directory, under the profile's launcher."""
    train = [
        "-m",
        "services.cli",
        "train",
        "--config",
        str(paths.config),
        "--output-dir",
        str(paths.dir),
    ]
    return [*launcher(launch, num_processes), *train]


def outcome(paths: JobPaths) -> tuple[str, str | None] | None:
    """(status, message) once the wrapper recorded an exit code, else None."""
    if not paths.exit_code.exists():
        return None
    code = int(paths.exit_code.read_text().strip() or "1")
    if paths.cancel.exists():
        return "cancelled", f"cancelled (exit code {code})"
    if code == 0:
        return "completed", None
    return "failed", f"exit code {code}:\n{tail(paths.log, 20)}"


def wrapper_alive(paths: JobPaths) -> bool:
    try:
        pid = int(paths.pid.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text().split()
    except (OSError, ValueError):
        return False
    return b"trainer.jobs.wrapper" in cmdline and stat[2] != "Z"


def tail(path: Path, n: int) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")


def read_metrics(path: Path, offset: int) -> tuple[list[tuple[int, dict[str, float]]], int]:
    """Complete JSONL lines after ``offset`` → [(step, {name: value})], new offset.

    A trailing line without its newline is left for the next call (the writer is mid-line).
    Non-numeric fields are ignored; a line without an integer ``step`` is skipped.
    """
    if not path.exists():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    rows = []
    for line in data[:end].splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            step = rec.get("step")
            if isinstance(step, int):
                values = {
                    k: float(v)
                    for k, v in rec.items()
                    if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
                }
                rows.append((step, values))
    return rows, offset + end


def base_model_name(config: dict[str, Any]) -> str | None:
    """The model a job starts from: its checkpoint dir's name, or ``tiny-<arch>``."""
    model = config.get("model") or {}
    if model.get("path"):
        return Path(str(model["path"])).name
    if model.get("tiny"):
        return f"tiny-{model['tiny']}"
    return None


def _default_validate(config: dict[str, Any]) -> dict[str, Any]:
    """The run config validated, and its reward reference resolved (an unknown preset is a 422
    at submission, not a failed job after the model has loaded)."""
    from trainer.config import validate_run_config
    from trainer.preflight import check_reward

    out = validate_run_config(config)
    check_reward((out.get("reward") or {}).get("reward", "dig"))
    return out


@dataclass
class JobManager:
    runs_dir: Path
    sessions: sessionmaker[Session]
    max_running: int = 1
    validate: Callable[[dict[str, Any]], dict[str, Any]] = _default_validate
    command: Callable[[JobPaths, str, int], list[str]] = train_command
    offsets: dict[int, int] = field(default_factory=dict)
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)

    def paths(self, job_id: int) -> JobPaths:
        return JobPaths(self.runs_dir, job_id)

    # -- API operations -------------------------------------------------------------

    def submit(self, req: JobSubmit) -> JobView:
        # run_dir is the job's own directory, whatever the submitted config says
        config = self.validate({**req.config, "run_dir": str(self.runs_dir / "job-pending")})
        with self.sessions.begin() as s:
            job = repo.create_training_job(
                s,
                req.name,
                config=config,
                seed=config.get("seed"),
                model=base_model_name(config),
                git_sha=code_revision(),
                lib_versions=lib_versions(),
            )
            job_id = job.id
        paths = self.paths(job_id)
        paths.dir.mkdir(parents=True, exist_ok=True)
        config["run_dir"] = str(paths.dir)
        paths.config.write_text(json.dumps(config, indent=2))
        paths.launch.write_text(
            json.dumps({"launch": req.launch, "num_processes": req.num_processes})
        )
        self.tick()
        return self.get(job_id)

    def get(self, job_id: int) -> JobView:
        with self.sessions() as s:
            return self._view(s, repo.get_training_job(s, job_id))

    def list(self, limit: int = 50, offset: int = 0) -> tuple[list[JobView], int]:
        with self.sessions() as s:
            jobs = s.scalars(
                select(TrainingJob).order_by(TrainingJob.id.desc()).limit(limit).offset(offset)
            ).all()
            total = s.scalar(select(func.count(TrainingJob.id))) or 0
            return [self._view(s, j) for j in jobs], total

    def cancel(self, job_id: int) -> JobView:
        view = self.get(job_id)
        if view.status not in ACTIVE:
            return view
        paths = self.paths(job_id)
        paths.cancel.touch()
        if view.status == "pending":
            with self.sessions.begin() as s:
                repo.set_job_status(s, job_id, "cancelled", "cancelled before it started")
        else:
            self._terminate(job_id)
        return self.get(job_id)

    def _terminate(self, job_id: int) -> None:
        """SIGTERM the job's process group (the wrapper leads it: it started a new session)."""
        proc = self.procs.get(job_id)
        with contextlib.suppress(OSError, ValueError):
            pgid = proc.pid if proc is not None else int(self.paths(job_id).pid.read_text())
            os.killpg(pgid, signal.SIGTERM)

    def logs(self, job_id: int, lines: int = 200) -> str:
        self.get(job_id)  # 404 for an unknown job
        return tail(self.paths(job_id).log, lines)

    # -- supervision ----------------------------------------------------------------

    def recover(self) -> None:
        """At service start: re-attach to live jobs, fail the ones whose process is gone."""
        with self.sessions.begin() as s:
            for job in s.scalars(select(TrainingJob).where(TrainingJob.status == "running")).all():
                paths = self.paths(job.id)
                if outcome(paths) is None and not wrapper_alive(paths):
                    repo.set_job_status(
                        s,
                        job.id,
                        "failed",
                        "the job's process was gone when the trainer service restarted",
                    )
                else:
                    log.info("re-attached to job %d", job.id)
        self.tick()

    def tick(self) -> None:
        """One supervision pass: finalise ended jobs, ingest metrics, start pending jobs."""
        with self.sessions.begin() as s:
            jobs = s.scalars(
                select(TrainingJob).where(TrainingJob.status.in_(ACTIVE)).order_by(TrainingJob.id)
            ).all()
            n_running = 0
            for job in (j for j in jobs if j.status == "running"):
                done = outcome(self.paths(job.id)) or self._vanished(job.id)  # before ingesting
                self._ingest(s, job.id)
                if done is None:
                    n_running += 1
                    if self.paths(job.id).cancel.exists():
                        self._terminate(job.id)  # again, in case the first signal raced the start
                else:
                    repo.set_job_status(s, job.id, *done)
                    self.procs.pop(job.id, None)
            for job in (j for j in jobs if j.status == "pending"):
                if n_running >= self.max_running:
                    break
                self._start(job.id)
                repo.set_job_status(s, job.id, "running")
                n_running += 1
        for proc in list(self.procs.values()):
            proc.poll()  # reap finished wrappers

    def _vanished(self, job_id: int) -> tuple[str, str] | None:
        """A job whose wrapper died without recording an exit code (killed, or cancelled early)."""
        proc = self.procs.get(job_id)
        gone = (
            proc.poll() is not None if proc is not None else not wrapper_alive(self.paths(job_id))
        )
        if not gone or outcome(self.paths(job_id)) is not None:
            return None
        if self.paths(job_id).cancel.exists():
            return "cancelled", "cancelled while starting"
        return "failed", "the job's process was gone before it recorded an exit code"

    def _start(self, job_id: int) -> None:
        paths = self.paths(job_id)
        launch = json.loads(paths.launch.read_text())
        cmd = self.command(paths, launch["launch"], launch["num_processes"])
        wrapper = [sys.executable, "-m", "trainer.jobs.wrapper", str(paths.dir), "--", *cmd]
        self.procs[job_id] = subprocess.Popen(
            wrapper,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        write_atomic(paths.pid, str(self.procs[job_id].pid))  # known before the wrapper runs
        log.info("started job %d: %s", job_id, " ".join(cmd))

    def _ingest(self, s: Session, job_id: int) -> None:
        rows, self.offsets[job_id] = read_metrics(
            self.paths(job_id).metrics, self.offsets.get(job_id, 0)
        )
        for step, values in rows:
            repo.add_training_metrics(s, job_id, step, values)

    def _view(self, s: Session, job: TrainingJob) -> JobView:
        step = s.scalar(
            select(TrainingMetric.step)
            .where(TrainingMetric.job_id == job.id)
            .order_by(TrainingMetric.step.desc())
            .limit(1)
        )
        latest = {}
        if step is not None:
            latest = {
                m.name: m.value
                for m in s.scalars(
                    select(TrainingMetric).where(
                        TrainingMetric.job_id == job.id, TrainingMetric.step == step
                    )
                )
            }
        return JobView(
            id=job.id,
            name=job.name,
            status=job.status,
            step=step,
            latest_metrics=latest,
            message=job.message,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )
