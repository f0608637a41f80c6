"""Run one training job from a :class:`~trainer.config.TrainConfig` (``prl train``).

Run dir layout::

    <run_dir>/config.yaml        the resolved config
    <run_dir>/base-model/        the tiny model, when ``model.tiny`` is set
    <run_dir>/checkpoints/       TRL/transformers checkpoints (checkpoint-<step>/)
    <run_dir>/metrics.jsonl      one record per step (trainer.metrics)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainer.config import TrainConfig
from trainer.metrics import JsonlSink, MetricsSink
from trainer.rewards import RewardClientConfig, make_reward_func

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    global_step: int
    resumed_from: Path | None


def model_path(cfg: TrainConfig) -> Path:
    """The checkpoint to train: ``model.path``, or a tiny model built once into the run dir."""
    if cfg.model.path is not None:
        return Path(cfg.model.path)
    from trainer.tiny import build_tiny_vlm

    out = cfg.run_path / "base-model"
    if not (out / "config.json").exists():
        assert cfg.model.tiny is not None
        build_tiny_vlm(cfg.model.tiny, out, seed=cfg.model.seed)
    return out


def train_dataset(cfg: TrainConfig) -> Any:
    """The task's split as a TRL dataset; DiG data is generated first when asked and missing."""
    from tasks import get_task
    from tasks.hf import to_hf_dataset

    root = Path(cfg.task.root)
    gen = cfg.task.generate
    if gen is not None and not (root / "manifest.jsonl").exists():
        from tasks.dig import generate

        generate(
            root,
            gen.n,
            renderer=gen.renderer,
            seed=gen.seed,
            split=gen.split,
            size=gen.size,
            progress=False,
        )
    task = get_task(cfg.task.name, root=str(root))
    return to_hf_dataset(task, cfg.task.split)


def grpo_args(cfg: TrainConfig) -> Any:
    """``trl.GRPOConfig`` from the run config (CPU-safe defaults: no bf16 without CUDA)."""
    import torch
    from trl import GRPOConfig

    on_gpu = torch.cuda.is_available()
    kwargs: dict[str, Any] = {
        "report_to": "none",
        "logging_steps": 1,
        "bf16": on_gpu,
        "use_cpu": not on_gpu,
        "gradient_checkpointing": on_gpu,
        "dataloader_num_workers": 0,
        "log_completions": False,
    }
    kwargs.update(cfg.grpo)
    gspo = cfg.loss_type == "gspo"
    return GRPOConfig(
        output_dir=str(cfg.run_path / "checkpoints"),
        max_steps=cfg.max_steps,
        seed=cfg.seed,
        loss_type="grpo" if gspo else cfg.loss_type,
        importance_sampling_level="sequence" if gspo else "token",
        save_strategy="steps",
        save_steps=cfg.checkpoint.every_steps,
        save_total_limit=cfg.checkpoint.keep,
        **kwargs,
    )


def last_checkpoint(run_dir: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    ckpts = run_dir / "checkpoints"
    found = get_last_checkpoint(str(ckpts)) if ckpts.is_dir() else None
    return Path(found) if found else None


def checkpoint_step(path: Path) -> int:
    """The global step of a ``checkpoint-<step>`` directory."""
    return int(path.name.rsplit("-", 1)[1])


def drop_records_after(path: Path, step: int) -> int:
    """Remove metric records past ``step`` (logged after the checkpoint we resume from).

    Those steps are trained again, so keeping them would log each twice. Returns the count.
    """
    if not path.exists():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    keep = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= step]
    path.write_text("".join(keep))
    return len(lines) - len(keep)


def build_trainer(
    cfg: TrainConfig, sinks: Sequence[MetricsSink] = (), callbacks: Sequence[Any] = ()
) -> Any:
    """A ready ``DevaGRPOTrainer`` for ``cfg`` (model, data, HTTP reward, metrics callback)."""
    from trainer.grpo import DevaGRPOTrainer
    from trainer.metrics import MetricsCallback
    from trainer.tiny import ensure_processor_support, load_processor

    ensure_processor_support()
    path = model_path(cfg)
    reward = make_reward_func(
        RewardClientConfig(
            url=cfg.reward.url,
            reward=cfg.reward.reward,
            api_key=cfg.reward.api_key,
            timeout_s=cfg.reward.timeout_s,
            retries=cfg.reward.retries,
        )
    )
    return DevaGRPOTrainer(
        model=str(path),
        reward_funcs=[reward],
        args=grpo_args(cfg),
        train_dataset=train_dataset(cfg),
        processing_class=load_processor(path),
        callbacks=[MetricsCallback(sinks), *callbacks],
        deva=cfg.deva.terms(),
    )


def run(
    cfg: TrainConfig,
    resume: bool = False,
    sinks: Sequence[MetricsSink] = (),
    callbacks: Sequence[Any] = (),
) -> RunResult:
    """Train; with ``resume`` continue from the newest checkpoint in the run dir (if any).

    ``callbacks``: extra ``transformers.TrainerCallback`` objects (e.g. a job's cancel hook).
    """
    run_dir = cfg.run_path
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    )
    start = last_checkpoint(run_dir) if resume else None
    if resume and start is None:
        log.warning("--resume: no checkpoint in %s; starting from step 0", run_dir)
    if start is not None:
        drop_records_after(run_dir / "metrics.jsonl", checkpoint_step(start))
    all_sinks = [JsonlSink(run_dir / "metrics.jsonl"), *sinks]
    trainer = build_trainer(cfg, all_sinks, callbacks)
    trainer.train(resume_from_checkpoint=str(start) if start else None)
    trainer.save_model(str(run_dir / "final"))
    return RunResult(run_dir, trainer.state.global_step, start)
