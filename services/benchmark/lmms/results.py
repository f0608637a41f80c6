"""lmms-eval's results dict → runs of the SQL store (one run per task), as pure functions.

The worker (:mod:`services.benchmark.lmms.worker`) writes what ``simple_evaluate`` returned;
:func:`task_runs` turns it into one :class:`TaskRun` per evaluated task, which
:func:`store_task_runs` writes through the same :class:`~services.benchmark.store.RunStore`
as ``prl bench run``, so the leaderboard shows them beside our own suites.

Mapping (lmms-eval 0.7.3's layout):

* suite name ``lmms-eval/<task>``; version ``<task version>+lmms-eval.<lmms-eval version>``
  (a task's prompts and metrics belong to the lmms-eval release that ships it);
* content hash: sha256 of the task config as lmms-eval dumped it (``configs[task]``), with the
  memory addresses of its Python functions removed (``<function f at 0x7f…>`` → ``<function
  f>``) and each local data file replaced by its sha256, so moving the data keeps the suite and
  editing it without a version bump is refused by the store. A group (a task made of subtasks)
  hashes its subtasks' hashes;
* metrics: every numeric ``"<metric>,<filter>"`` entry of ``results[task]``, named ``<metric>``
  for lmms-eval's default filter ``none`` and ``<metric>,<filter>`` otherwise; ``stderr`` from
  its ``<metric>_stderr,<filter>`` entry (``"N/A"`` → none), ``higher_is_better`` from
  ``higher_is_better[task]`` (lmms-eval's ``None``, "unknown", is stored as higher-is-better),
  ``n`` = the number of documents evaluated (``n-samples[task].effective``);
* per-sample rows: ``sample_id`` = lmms-eval's ``doc_id``, ``prediction`` = the filtered
  response, ``components`` = the sample's numeric metric values (a dict value contributes its
  ``score``), ``extra`` = target, ``doc_hash`` and input media;
* run config (hashed into the run key): harness and lmms-eval version, task, model backend and
  extra model args, device, limit, generation overrides, few-shot count and seed. The model path
  is the model's provenance, not config (moving a checkpoint does not start a new run), the date
  is the run's own ``started_at``/``finished_at``, the libraries of the venv that ran it are its
  ``lib_versions``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.benchmark.store import RunSpec, RunStore

SUITE_PREFIX = "lmms-eval/"
DEFAULT_FILTER = "none"
_ADDRESS = re.compile(r"<(function|bound method|built-in function) (\S+) at 0x[0-9a-fA-F]+>")
_STDERR_SUFFIXES = ("_stderr_clt", "_stderr_clustered")


@dataclass(frozen=True)
class LmmsRequest:
    """What was asked of lmms-eval (the parts that go into each run's config)."""

    model_path: str
    model_name: str
    backend: str = "qwen2_vl"
    model_args: str = ""
    device: str = "cpu"
    limit: int | None = None
    gen_kwargs: str | None = None
    batch_size: int = 1
    seed: int = 0


@dataclass(frozen=True)
class TaskRun:
    """One task's run: its identity and provenance, per-sample rows and metrics."""

    task: str
    spec: RunSpec
    rows: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)


def suite_name(task: str) -> str:
    return f"{SUITE_PREFIX}{task}"


def suite_version(task_version: Any, lmms_version: str) -> str:
    """``1.0+lmms-eval.0.7.3``: the task's own version, then the release that ships it."""
    return f"{task_version}+lmms-eval.{lmms_version}"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _data_file_digests(files: Any, base: Path) -> Any:
    """``data_files`` (a path, a list, or split → path/list) with each existing local file
    replaced by ``sha256:<hex>``; hub paths and globs are kept as written."""
    if isinstance(files, Mapping):
        return {k: _data_file_digests(v, base) for k, v in sorted(files.items())}
    if isinstance(files, list | tuple):
        return [_data_file_digests(v, base) for v in files]
    if isinstance(files, str):
        path = Path(files) if Path(files).is_absolute() else base / files
        return f"sha256:{_sha256_file(path)}" if path.is_file() else files
    return files


def _strip_addresses(obj: Any) -> Any:
    if isinstance(obj, str):
        return _ADDRESS.sub(r"<\1 \2>", obj)
    if isinstance(obj, Mapping):
        return {str(k): _strip_addresses(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strip_addresses(v) for v in obj]
    return obj


def task_content_hash(config: Mapping[str, Any], base: Path | None = None) -> str:
    """sha256 of the task config without function addresses and data-file locations."""
    from services.store.repository import canonical_json

    cfg = _strip_addresses(dict(config))
    kwargs = cfg.get("dataset_kwargs")
    if isinstance(kwargs, Mapping) and "data_files" in kwargs:
        cfg["dataset_kwargs"] = {
            **kwargs,
            "data_files": _data_file_digests(kwargs["data_files"], base or Path.cwd()),
        }
    return hashlib.sha256(canonical_json(cfg).encode()).hexdigest()


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def task_metrics(
    task_results: Mapping[str, Any], directions: Mapping[str, Any], n: int | None
) -> list[dict[str, Any]]:
    """The metrics of one ``results[task]`` entry (see the module docstring for the names)."""
    values: dict[str, float] = {}
    stderrs: dict[str, float | None] = {}
    for key, value in task_results.items():
        if "," not in key:  # "alias" and other labels
            continue
        metric, filt = key.split(",", 1)
        if metric.endswith(_STDERR_SUFFIXES):
            continue
        if metric.endswith("_stderr"):
            stderrs[f"{metric[: -len('_stderr')]},{filt}"] = _finite(value)
            continue
        v = _finite(value)
        if v is not None:
            values[f"{metric},{filt}"] = v
    out = []
    for key, v in values.items():
        metric, filt = key.split(",", 1)
        higher = directions.get(metric)
        out.append(
            {
                "name": metric if filt == DEFAULT_FILTER else key,
                "value": v,
                "higher_is_better": True if higher is None else bool(higher),
                "stderr": stderrs.get(key),
                "n": n,
            }
        )
    return sorted(out, key=lambda m: m["name"])


def _score(value: Any) -> float | None:
    if isinstance(value, Mapping):
        return _finite(value.get("score"))
    return _finite(value)


def sample_rows(samples: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> list[dict]:
    """Per-sample prediction rows of one task (``metrics``: the task's metric names)."""
    rows = []
    for s in samples:
        resp = s.get("filtered_resps")
        first = resp[0] if isinstance(resp, list) and resp else resp
        prediction = first if isinstance(first, str) or first is None else json.dumps(first)
        components = {m: v for m in metrics if (v := _score(s.get(m))) is not None}
        rows.append(
            {
                "sample_id": str(s.get("doc_id")),
                "prediction": prediction,
                "reward": None,
                "components": components,
                "error": None,
                "extra": {
                    "target": s.get("target"),
                    "doc_hash": s.get("doc_hash"),
                    "input_media": s.get("input_media"),
                },
            }
        )
    return rows


def run_config(request: LmmsRequest, task: str, lmms_version: str, n_shot: Any) -> dict:
    """What determines a task's outputs and numbers (hashed into the run key)."""
    return {
        "harness": "lmms-eval",
        "lmms_eval": lmms_version,
        "task": task,
        "backend": request.backend,
        "model_args": request.model_args,
        "device": request.device,
        "limit": request.limit,
        "gen_kwargs": request.gen_kwargs,
        "num_fewshot": n_shot,
        "seed": request.seed,
    }


def _evaluated_tasks(payload: Mapping[str, Any]) -> list[str]:
    """Leaf tasks (those with a config) first, then groups, each in lmms-eval's order."""
    names = list(payload.get("results", {}))
    configs = payload.get("configs", {})
    return [t for t in names if t in configs] + [t for t in names if t not in configs]


def task_runs(
    payload: Mapping[str, Any],
    request: LmmsRequest,
    *,
    model_info: Mapping[str, Any],
    git_sha: str | None,
    base: Path | None = None,
) -> list[TaskRun]:
    """One :class:`TaskRun` per task (and group) in an lmms-eval results payload."""
    from services.store.repository import config_hash, make_run_key

    versions = dict(payload.get("prl_lib_versions") or {})
    lmms_version = str(versions.get("lmms_eval") or "unknown")
    configs = payload.get("configs", {})
    subtasks = payload.get("group_subtasks", {})
    hashes: dict[str, str] = {}
    out: list[TaskRun] = []
    for task in _evaluated_tasks(payload):
        if task in configs:
            content = task_content_hash(configs[task], base)
        else:
            parts = [hashes[t] for t in subtasks.get(task, []) if t in hashes]
            if not parts:
                continue  # neither a task nor a group of evaluated tasks: nothing to pin
            content = hashlib.sha256("\x1f".join(sorted(parts)).encode()).hexdigest()
        hashes[task] = content
        n_info = payload.get("n-samples", {}).get(task) or {}
        n = n_info.get("effective")
        directions = payload.get("higher_is_better", {}).get(task) or {}
        metrics = task_metrics(payload["results"][task], directions, n)
        rows = sample_rows(payload.get("samples", {}).get(task, []), list(directions))
        version = suite_version(payload.get("versions", {}).get(task, "0"), lmms_version)
        config = run_config(request, task, lmms_version, payload.get("n-shot", {}).get(task))
        name = suite_name(task)
        key = make_run_key(
            request.model_name, name, version, content, config_hash(config), request.seed
        )
        spec = RunSpec(
            key=key,
            model=request.model_name,
            model_info=dict(model_info),
            suite=name,
            suite_version=version,
            content_hash=content,
            config=config,
            seed=request.seed,
            git_sha=git_sha,
            lib_versions=versions,
            n_samples=n if n is not None else len(rows),
        )
        out.append(TaskRun(task, spec, rows, metrics))
    return out


def store_task_runs(store: RunStore, runs: Sequence[TaskRun]) -> list[dict[str, Any]]:
    """Write each run (predictions first-write-wins, metrics replaced) and close it."""
    summary = []
    for tr in runs:
        run_id = store.open_run(tr.spec)
        new = store.add(run_id, tr.rows)
        store.set_metrics(run_id, tr.metrics)
        store.finish(run_id, "completed")
        summary.append(
            {
                "task": tr.task,
                "suite": tr.spec.suite,
                "version": tr.spec.suite_version,
                "run_id": run_id,
                "key": tr.spec.key,
                "n_samples": tr.spec.n_samples,
                "n_new": new,
                "metrics": list(tr.metrics),
            }
        )
    return summary
