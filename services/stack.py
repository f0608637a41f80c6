"""A local stack of services as supervised subprocesses on loopback (``prl up``, the demo).

Each service runs as ``python -m services.cli serve <name> --port P`` in its own process
group, with ``PR_SET_PDEATHSIG`` so it dies with the supervisor even on ``kill -9``.
``LocalStack.stop`` sends SIGTERM to every group (uvicorn drains in-flight requests), waits,
then SIGKILLs what is left: no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RunningService:
    spec: ServiceSpec
    proc: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.spec.port}"

    def log_tail(self, n: int = 30) -> str:
        lines = (
            self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        )
        return "\n".join(lines[-n:])


class StackError(RuntimeError):
    pass


class LocalStack:
    def __init__(self, specs: list[ServiceSpec], *, log_dir: Path) -> None:
        self.specs = specs
        self.log_dir = Path(log_dir)
        self.running: dict[str, RunningService] = {}

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.specs:
            env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
            log_path = self.log_dir / f"{spec.name}.log"
            with open(log_path, "wb") as out:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "services.cli",
                        "serve",
                        spec.name,
                        "--port",
                        str(spec.port),
                    ],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            self.running[spec.name] = RunningService(spec, proc, log_path)
            log.info("started %s (pid %d) on port %d", spec.name, proc.pid, spec.port)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Poll every service's ``/readyz`` until 200; raise with its log tail if one dies."""
        deadline = time.monotonic() + timeout_s
        pending = dict(self.running)
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name, svc in list(pending.items()):
                    if svc.proc.poll() is not None:
                        raise StackError(
                            f"{name} exited with {svc.proc.returncode}:\n{svc.log_tail()}"
                        )
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(svc.url + "/readyz").status_code == 200:
                            del pending[name]
                if pending and time.monotonic() > deadline:
                    tails = "\n".join(f"--- {n}\n{s.log_tail(10)}" for n, s in pending.items())
                    raise StackError(
                        f"not ready after {timeout_s:.0f} s: {sorted(pending)}\n{tails}"
                    )
                if pending:
                    time.sleep(0.2)

    def urls(self) -> dict[str, str]:
        return {name: svc.url for name, svc in self.running.items()}

    def stop(self, grace_s: float = 15.0) -> None:
        for svc in self.running.values():
            _signal_group(svc.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for svc in self.running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                svc.proc.wait(max(0.0, deadline - time.monotonic()))
            if svc.proc.poll() is None:
                log.warning("%s did not stop in %.0f s; killing it", svc.spec.name, grace_s)
                _signal_group(svc.proc, signal.SIGKILL)
                svc.proc.wait()
        self.running.clear()

    @contextlib.contextmanager
    def running_context(self, timeout_s: float = 120.0) -> Iterator[LocalStack]:
        try:
            self.start()
            self.wait_ready(timeout_s)
            yield self
        finally:
            self.stop()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


DEFAULT_SERVICES = ("embedding", "reward", "leaderboard", "trainer")


def default_specs(workdir: Path, services: tuple[str, ...] = DEFAULT_SERVICES) -> list[ServiceSpec]:
    """Loopback specs for the local stack: SQLite in ``workdir``, tiny encoder in ``workdir/models``.

    Order matters only for readability; every service waits for its own dependencies through
    its ``/readyz``.
    """
    workdir = Path(workdir).resolve()
    ports = {name: free_port() for name in services}
    db_url = f"sqlite:///{workdir / 'prl.sqlite'}"
    env: dict[str, dict[str, str]] = {
        "embedding": {
            "PRL_EMBEDDING_MODEL_DIR": str(workdir / "models" / "clip"),
            "PRL_EMBEDDING_DATA_ROOT": str(workdir),
        },
        "reward": {},
        "leaderboard": {"PRL_DATABASE_URL": db_url},
        "trainer": {"PRL_DATABASE_URL": db_url, "PRL_TRAINER_RUNS_DIR": str(workdir / "runs")},
    }
    if "embedding" in ports:
        env["reward"]["PRL_REWARD_EMBEDDING_URL"] = f"http://127.0.0.1:{ports['embedding']}"
    if "reward" in ports:
        env["trainer"]["PRL_TRAINER_REWARD_URL"] = f"http://127.0.0.1:{ports['reward']}"
    return [ServiceSpec(name, ports[name], env.get(name, {})) for name in services]
