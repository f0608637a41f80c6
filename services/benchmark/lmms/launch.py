"""Run lmms-eval on a checkpoint from our CLI: find its venv, start the worker, read its file.

lmms-eval cannot share an environment with the project (it pulls torchvision, which PyPI ships
as a CUDA build that does not load beside the CPU torch, and its own pins), so it lives in
``.venv-lmms`` (``make lmms-env``) and runs there as a subprocess:
``<venv python> -m services.benchmark.lmms.worker …`` with this checkout first on
``PYTHONPATH``. Its log (lmms-eval's progress bars) goes to our stderr; its results come back as
a JSON file (:mod:`services.benchmark.lmms.worker`).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.provenance import PACKAGE_ROOT

VENV_DIR = ".venv-lmms"
PYTHON_ENV = "PRL_LMMS_PYTHON"


class LmmsEnvError(FileNotFoundError):
    """No Python with lmms-eval was found (the message says how to build one)."""


class LmmsUserError(ValueError):
    """lmms-eval refused the request (an unknown task, an unreadable task file)."""


class LmmsRunError(ChildProcessError):
    """lmms-eval itself failed (no data, no network, a model it cannot run); its log was
    printed above. A failed child process, reported as one line like any ``OSError``."""


def _venv_python(root: Path) -> Path:
    return root / VENV_DIR / "bin" / "python"


def find_python(explicit: str | None = None) -> Path:
    """The interpreter that has lmms-eval: ``explicit`` (``--python`` / ``PRL_LMMS_PYTHON``),
    else ``.venv-lmms`` in the current directory, else in this checkout."""
    if explicit:
        candidates = [Path(explicit)]
    else:
        candidates = [_venv_python(Path.cwd()), _venv_python(PACKAGE_ROOT)]
    for python in candidates:
        if python.is_file() and os.access(python, os.X_OK):
            _check_has_lmms(python)
            return python
    where = str(candidates[0]) if explicit else f"{VENV_DIR}/bin/python"
    raise LmmsEnvError(
        f"lmms-eval's venv is not built ({where} not found): run `make lmms-env` in the "
        f"repository, or point {PYTHON_ENV} / --python at a Python with lmms-eval 0.7.3"
    )


def _check_has_lmms(python: Path) -> str:
    probe = "import importlib.metadata as m; print(m.version('lmms_eval'))"
    done = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise LmmsEnvError(
            f"{python} has no lmms-eval installed: run `make lmms-env` (it builds {VENV_DIR})"
        )
    return done.stdout.strip()


@dataclass(frozen=True)
class WorkerCall:
    """The worker's arguments (see ``python -m services.benchmark.lmms.worker --help``)."""

    model: str
    tasks: Sequence[str]
    include_paths: Sequence[str] = ()
    backend: str = "qwen2_vl"
    model_args: str = ""
    limit: int | None = None
    batch_size: int = 1
    device: str = "cpu"
    gen_kwargs: str | None = None
    seed: int = 0
    bootstrap_iters: int = 1000

    def argv(self, output: Path) -> list[str]:
        out = [
            "--quiet",
            "--model",
            str(Path(self.model).expanduser().resolve()),
            "--tasks",
            ",".join(self.tasks),
            "--backend",
            self.backend,
            "--batch-size",
            str(self.batch_size),
            "--device",
            self.device,
            "--seed",
            str(self.seed),
            "--bootstrap-iters",
            str(self.bootstrap_iters),
            "--output",
            str(output),
        ]
        for p in self.include_paths:
            out += ["--include-path", str(Path(p).expanduser().resolve())]
        if self.model_args:
            out += ["--model-args", self.model_args]
        if self.limit is not None:
            out += ["--limit", str(self.limit)]
        if self.gen_kwargs:
            out += ["--gen-kwargs", self.gen_kwargs]
        return out


def worker_env(offline: bool, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: this checkout first on ``PYTHONPATH``; with ``offline`` the
    Hugging Face hub and datasets are told not to try the network (a hub task then fails at
    once instead of retrying)."""
    env = dict(os.environ if base is None else base)
    paths = [str(PACKAGE_ROOT), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
        env["HF_DATASETS_OFFLINE"] = "1"
    return env


def run_worker(
    python: Path, call: WorkerCall, *, offline: bool = False, timeout: float | None = None
) -> dict[str, Any]:
    """Run lmms-eval in ``python``'s environment; returns its results payload."""
    with tempfile.TemporaryDirectory(prefix="prl-lmms-") as tmp:
        output = Path(tmp) / "results.json"
        cmd = [str(python), "-m", "services.benchmark.lmms.worker", *call.argv(output)]
        # the worker's stdout (lmms-eval's log) joins its stderr on our fd 2, so our own
        # stdout carries only the result (``--json``)
        done = subprocess.run(cmd, env=worker_env(offline), stdout=2, timeout=timeout, check=False)
        payload: dict[str, Any] = {}
        if output.is_file():
            payload = json.loads(output.read_text())
    if done.returncode == 2 and "error" in payload:
        raise LmmsUserError(payload["error"])
    if done.returncode != 0 or "results" not in payload:
        raise LmmsRunError(
            f"lmms-eval failed (exit code {done.returncode}); its log is above"
            + ("" if offline else " (no network here? add --offline to fail fast on hub data)")
        )
    return payload
