"""Per-step training metrics: a thin sink protocol, a JSONL sink, and the TRL callback.

A record is ``{"step": int, "time": float, <metric>: float, ...}`` with TRL's names (``loss``,
``reward``, ``reward_std``, ``frac_reward_zero_std``, ``kl``, ``entropy``, ``step_time``,
``num_tokens``) plus ours (``div/loss``, ``ent/loss``, ``eos_logp``, ``reward_service/...``) and
``tokens_per_s`` = Δnum_tokens / step_time (TRL's ``num_tokens`` counts prompt and completion
tokens; image tokens included), ``world_size`` (the number of training processes,
``TrainingArguments.world_size`` = ``accelerator.num_processes``) and whatever the extra
providers return (e.g. ``curriculum/stage_index``). The store can add a SQL sink with the same
protocol.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from transformers import TrainerCallback


class MetricsSink(Protocol):
    """Receives one record per logging step."""

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Appends one JSON object per line to ``path`` (flushed per record).

    The file is opened at the first record, so a process that never logs (a non-main DDP
    rank) never creates it — another rank's preflight would take it for an earlier run.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: Any = None

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def clean_record(step: int, logs: dict[str, Any], prev_tokens: float | None) -> dict[str, Any]:
    """Finite floats only; adds ``tokens_per_s`` when the step's token count and time are known."""
    record: dict[str, Any] = {"step": step, "time": time.time()}
    for key, value in logs.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            record[key] = float(value)
    tokens, dt = record.get("num_tokens"), record.get("step_time")
    if tokens is not None and dt and prev_tokens is not None and tokens > prev_tokens:
        record["tokens_per_s"] = (tokens - prev_tokens) / dt
    return record


def world_size() -> int:
    """Number of training processes: ``accelerate.PartialState().num_processes`` (the shared
    state behind ``Trainer.accelerator.num_processes``); 1 without a distributed launch."""
    from accelerate import PartialState

    return int(PartialState().num_processes)


class MetricsCallback(TrainerCallback):
    """Forwards each training log (not the final summary) to every sink.

    ``providers``: callables returning extra numeric fields for each record (evaluated at log
    time, after the step's ``on_step_end`` callbacks).
    """

    def __init__(
        self,
        sinks: Sequence[MetricsSink],
        providers: Sequence[Callable[[], Mapping[str, float]]] = (),
    ) -> None:
        self.sinks = list(sinks)
        self.providers = list(providers)
        self._prev_tokens: float | None = 0.0

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any
    ) -> None:
        if not logs or "train_runtime" in logs or not state.is_world_process_zero:
            return
        record = clean_record(state.global_step, logs, self._prev_tokens)
        self._prev_tokens = record.get("num_tokens", self._prev_tokens)
        record["world_size"] = world_size()
        for provider in self.providers:
            record.update(provider())
        for sink in self.sinks:
            sink.write(record)

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        for sink in self.sinks:
            sink.close()
