"""A local stack of services as supervised subprocesses on loopback (``prl up``, the demo).

Each service runs as ``python -m services.cli serve <name> --port P`` in its own process
group, with ``PR_SET_PDEATHSIG`` so it dies with the supervisor even on ``kill -9``.
``LocalStack.stop`` sends SIGTERM to every group (uvicorn drains in-flight requests), waits,
then SIGKILLs what is left: no orphans.

Also the helpers that tests and benchmarks share: :func:`free_port`, :func:`wait_ready` (poll
``/readyz``, fail fast with the log tail if the server process died) and
:func:`serve_in_thread` (an app under uvicorn in a daemon thread).
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
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.common.catalog import SERVICE_NAMES

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it; another process may take it
    before the caller binds it, which is fine for tests and benchmarks on loopback)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class StackError(RuntimeError):
    pass


@dataclass(frozen=True)
class _Probe:
    """What :func:`_wait_all_ready` watches: ``{url}/readyz``, the server's process (if we
    started it), and how to read the last ``n`` lines of its output."""

    url: str
    proc: subprocess.Popen | None = None
    tail: Callable[[int], str] = lambda n: ""


def _wait_all_ready(probes: Mapping[str, _Probe], timeout_s: float) -> None:
    """Poll each probe's ``/readyz`` until 200, all at once; raise :class:`StackError` with the
    output tail as soon as one's process has exited, or with every pending one's tail after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pending = dict(probes)
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for name, probe in list(pending.items()):
                if probe.proc is not None and probe.proc.poll() is not None:
                    raise StackError(
                        f"{name} exited with {probe.proc.returncode}:\n{probe.tail(30)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(probe.url + "/readyz").status_code == 200:
                        del pending[name]
            if pending and time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{p.tail(10)}" for n, p in pending.items())
                raise StackError(f"not ready after {timeout_s:.0f} s: {sorted(pending)}\n{tails}")
            if pending:
                time.sleep(0.1)


def _pipe_tail(proc: subprocess.Popen, n: int) -> str:
    """Last ``n`` lines of what an exited ``proc`` wrote to its stdout/stderr pipes ("" while
    it runs: reading a live process's pipe would block)."""
    if proc.poll() is None:
        return ""
    text = ""
    for stream in (proc.stdout, proc.stderr):
        if stream is not None and not stream.closed:
            with contextlib.suppress(OSError, ValueError):
                data = stream.read()
                text += data.decode(errors="replace") if isinstance(data, bytes) else data
    return "\n".join(text.splitlines()[-n:])


def wait_ready(url: str, *, proc: subprocess.Popen | None = None, timeout_s: float = 60.0) -> None:
    """Poll ``{url}/readyz`` until it answers 200.

    ``proc``: the server's process, if the caller started it; should it exit first,
    :class:`StackError` is raised at once with the end of its piped output. Not ready after
    ``timeout_s`` → :class:`StackError`.
    """
    tail = (lambda n: _pipe_tail(proc, n)) if proc is not None else (lambda n: "")
    _wait_all_ready({url: _Probe(url, proc, tail)}, timeout_s)


@contextlib.contextmanager
def serve_in_thread(app: Any, *, host: str = "127.0.0.1", timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with a ``uvicorn.Server`` on ``host``:<free port> in a daemon thread.

    Yields the base URL once uvicorn has started (lifespan startup done, socket listening);
    on exit asks the server to stop and joins the thread (in-flight requests drain).
    """
    import uvicorn

    port = free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True, name=f"uvicorn-{port}")
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise StackError(f"uvicorn did not start on {host}:{port}")
            time.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


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
        _wait_all_ready(
            {n: _Probe(svc.url, svc.proc, svc.log_tail) for n, svc in self.running.items()},
            timeout_s,
        )

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


DEFAULT_SERVICES = SERVICE_NAMES
"""Every service, in start order (``services.common.catalog``)."""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something already listens on (or holds) ``host:port``."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def default_specs(
    workdir: Path,
    services: tuple[str, ...] = DEFAULT_SERVICES,
    ports: dict[str, int] | None = None,
) -> list[ServiceSpec]:
    """Loopback specs for the local stack: SQLite in ``workdir``, tiny encoder in ``workdir/models``.

    ``ports``: service → port (``prl up`` passes the documented ports of
    ``services.common.catalog``); a service not named gets a free port picked by the OS
    (tests, the demo).

    Order matters only for readability; every service waits for its own dependencies through
    its ``/readyz``.
    """
    workdir = Path(workdir).resolve()
    ports = {name: (ports or {}).get(name) or free_port() for name in services}
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
