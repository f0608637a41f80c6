"""``run_benchmark``: generate, score and store every sample of a task, resumably.

Orchestration only; every step is a small function:

1. the run's identity: ``key = make_run_key(model, suite, version, content hash, config
   hash, seed)`` unless given; the config holds what changes the stored rows (split, limit,
   reward, adapter generation settings; task options are in the content hash) and *not* the
   batch size, which must not change any output (so a run may be resumed with another batch
   size), nor the metrics, which are recomputed from the stored rows;
2. skip the samples already stored for this key (resume; ``add_predictions`` is idempotent
   per (run, sample), so a batch re-sent after a crash is never counted twice);
3. per batch: adapter → completions; the task's frame (an ``input`` frame is checked
   against the adapter's real resize; never guessed) → reward samples → scorer → one stored
   row per sample, committed per batch;
4. metrics over *all* stored rows of the run's samples (task order), with bootstrap
   intervals, then ``finish_run``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.geometry import Frame
from schemas.reward import RewardRef, Sample, SampleResult
from schemas.tasks import TaskSample
from services.benchmark.adapters.base import GenerationRequest, ModelAdapter
from services.benchmark.metrics import MetricRef, compute_metrics
from services.benchmark.parsing import boxes_from_json, boxes_to_json, parse_prediction
from services.benchmark.records import EvalRecord, MetricValue
from services.benchmark.reward_key import reward_key
from services.benchmark.scoring import Scorer
from services.benchmark.store import RunSpec, RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How to run: ``key`` (default: derived), ``split``, first-``limit`` samples, batch size,
    seed (bootstrap), bootstrap resamples, reward override, extra metrics, progress bar."""

    key: str | None = None
    split: str | None = None
    limit: int | None = None
    batch_size: int = 8
    seed: int = 0
    n_boot: int = 1000
    reward: RewardRef | None = None
    metrics: tuple[MetricRef, ...] = ()
    send_images: bool = False
    progress: bool = True


@dataclass(frozen=True)
class RunResult:
    run_id: int
    key: str
    n_samples: int
    n_new: int
    metrics: list[MetricValue]


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    for i in range(0, len(items), size):
        yield items[i : i + size]


def resolve_frame(sample: TaskSample, adapter: ModelAdapter) -> Frame:
    """The sample's frame, checked against the model for ``input`` frames.

    An ``input`` frame carries the task's idea of the model-input size (Qwen ``smart_resize``
    with the task's pixel limits). When the adapter knows the size its processor really
    produces and that differs, the numbers would be read in the wrong frame, so this raises
    instead of guessing; an adapter that cannot tell (HTTP endpoints) leaves the task's frame.
    """
    f = sample.frame
    if f.coords != "input" or f.image_size is None:
        return f
    actual = adapter.input_size((int(f.image_size[0]), int(f.image_size[1])))
    if actual is None or f.input_size is None or tuple(actual) == tuple(f.input_size):
        return f
    raise ValueError(
        f"sample {sample.id!r}: the task reads boxes in a {f.input_size[0]}×{f.input_size[1]} "
        f"model input, but {adapter.name!r} resizes the {f.image_size[0]}×{f.image_size[1]} image "
        f"to {actual[0]}×{actual[1]}; set the task's min/max pixel options to the model's"
    )


def reward_sample(s: TaskSample, completion: str, frame: Frame, send_images: bool) -> Sample:
    return Sample(
        id=s.id,
        completion=completion,
        solution=s.solution,
        frame=frame,
        image=s.images[-1] if send_images else None,
        query=s.query,
    )


def prediction_row(
    s: TaskSample, completion: str, frame: Frame, result: SampleResult
) -> dict[str, Any]:
    """The stored row: completion, reward, components, error, and in ``extra`` what metrics
    need without the task (solution, frame, meta, boxes parsed in pixels)."""
    solution = s.solution.model_dump(mode="json")
    boxes = parse_prediction(completion, frame) if "boxes" in solution else None
    return {
        "sample_id": s.id,
        "prediction": completion,
        "reward": result.reward,
        "components": dict(result.components),
        "error": None if result.error is None else result.error.model_dump(),
        "extra": {
            "solution": solution,
            "frame": frame.model_dump(mode="json"),
            "meta": s.meta,
            "boxes": boxes_to_json(boxes),
            "images": [str(p) for p in s.images],
        },
    }


def record_from_row(row: dict[str, Any]) -> EvalRecord:
    extra = row.get("extra") or {}
    err = row.get("error")
    return EvalRecord(
        id=row["sample_id"],
        completion=row.get("prediction") or "",
        solution=extra.get("solution") or {},
        boxes=boxes_from_json(extra.get("boxes")),
        components={k: v for k, v in (row.get("components") or {}).items() if v is not None},
        reward=float(row.get("reward") or 0.0),
        error=None if err is None else str(err.get("code", "error")),
        meta=extra.get("meta") or {},
    )


def lib_versions() -> dict[str, str]:
    from services.common.provenance import lib_versions as versions

    return versions()


def git_sha() -> str | None:
    """The code revision of this package (not of the caller's directory); see
    :func:`services.common.provenance.code_revision`."""
    from services.common.provenance import code_revision

    return code_revision()


def run_config(
    task: Any, adapter: ModelAdapter, opts: RunOptions, reward: RewardRef
) -> dict[str, Any]:
    """What determines the outputs and numbers of a run (hashed into its key).

    Task options are not listed: the task's content hash covers them (without file-system
    locations), so moving the data does not start a new run. Neither are the metrics nor the
    bootstrap settings: they post-process the stored rows, so asking for another metric
    reuses the run's predictions and adds the metric.
    """
    info = {k: v for k, v in adapter.describe().items() if k not in ("path", "base_url")}
    return {
        "task": task.name,
        "task_version": task.version,
        "split": opts.split,
        "limit": opts.limit,
        "reward": reward if isinstance(reward, str) else reward.model_dump(mode="json"),
        "adapter": info,
    }


def _content_hash(task: Any, split: str | None) -> str:
    try:
        return task.content_hash(split)
    except TypeError:  # a task whose content_hash takes no split
        return task.content_hash()


def run_benchmark(
    task: Any,
    adapter: ModelAdapter,
    *,
    store: RunStore,
    scorer: Scorer,
    options: RunOptions | None = None,
) -> RunResult:
    """Run (or resume) ``task`` on ``adapter``; returns the run id, key and its metrics."""
    from services.store.repository import config_hash, make_run_key

    opts = options or RunOptions()
    samples = list(task.samples(opts.split))
    if opts.limit is not None:
        samples = samples[: opts.limit]
    reward: RewardRef = opts.reward if opts.reward is not None else task.reward
    rkey = reward_key(reward)
    metric_refs: list[MetricRef] = [
        *task.metrics,
        *opts.metrics,
        {"name": "mean_reward", "params": {"spec": rkey.name, "spec_hash": rkey.hash}},
    ]
    config = run_config(task, adapter, opts, reward)
    content = _content_hash(task, opts.split)
    key = opts.key or make_run_key(
        adapter.name, task.name, task.version, content, config_hash(config), opts.seed
    )
    spec = RunSpec(
        key=key,
        model=adapter.name,
        model_info=adapter.describe(),
        suite=task.name,
        suite_version=task.version,
        content_hash=content,
        config=config,
        seed=opts.seed,
        git_sha=git_sha(),
        lib_versions=lib_versions(),
        n_samples=len(samples),
    )
    run_id = store.open_run(spec)
    try:
        n_new = _generate_and_score(task, adapter, store, scorer, run_id, samples, reward, opts)
        metrics = _finish(store, run_id, samples, metric_refs, opts)
    except BaseException as exc:
        store.finish(run_id, "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    return RunResult(run_id, key, len(samples), n_new, metrics)


def _generate_and_score(
    task: Any,
    adapter: ModelAdapter,
    store: RunStore,
    scorer: Scorer,
    run_id: int,
    samples: list[TaskSample],
    reward: RewardRef,
    opts: RunOptions,
) -> int:
    from tqdm.auto import tqdm

    done = store.done_ids(run_id)
    todo = [s for s in samples if s.id not in done]
    if done:
        log.info(
            "run %d: resuming, %d of %d samples already stored",
            run_id,
            len(samples) - len(todo),
            len(samples),
        )
    n_new = 0
    with tqdm(
        total=len(samples),
        initial=len(samples) - len(todo),
        unit="sample",
        desc=f"{task.name}",
        disable=not opts.progress,
    ) as bar:
        for batch in chunks(todo, opts.batch_size):
            requests = [GenerationRequest(s.id, task.messages(s), list(s.images)) for s in batch]
            completions = adapter.generate(requests)
            if len(completions) != len(batch):
                raise RuntimeError(
                    f"adapter {adapter.name!r} returned {len(completions)} completions for {len(batch)} requests"
                )
            frames = [resolve_frame(s, adapter) for s in batch]
            rsamples = [
                reward_sample(s, c, f, opts.send_images)
                for s, c, f in zip(batch, completions, frames, strict=True)
            ]
            results = {r.id: r for r in scorer.score(rsamples, reward)}
            rows = [
                prediction_row(s, c, f, results[s.id])
                for s, c, f in zip(batch, completions, frames, strict=True)
            ]
            n_new += store.add(run_id, rows)
            bar.update(len(batch))
    return n_new


def _finish(
    store: RunStore, run_id: int, samples: list[TaskSample], refs: list[MetricRef], opts: RunOptions
) -> list[MetricValue]:
    by_id = {r["sample_id"]: r for r in store.rows(run_id)}
    missing = [s.id for s in samples if s.id not in by_id]
    if missing:
        raise RuntimeError(
            f"run {run_id}: {len(missing)} samples have no stored prediction, e.g. {missing[:5]}"
        )
    records = [record_from_row(by_id[s.id]) for s in samples]
    values = compute_metrics(refs, records, n_boot=opts.n_boot, seed=opts.seed)
    store.set_metrics(run_id, [v.as_dict() for v in values])
    store.finish(run_id, "completed")
    return values
