"""Supervised fine-tuning on gold completions (``method: sft``): the SFT / SFT-CoT baselines.

DEVA's tables compare GRPO (+ DEVA) against SFT on the same data; SFT-CoT adds reasoning
traces. Here the data are the task's own samples (same prompts, images and splits as GRPO),
each paired with the gold completion of :func:`tasks.dig.traces.sft_completion`:
``<think>…</think><answer>[{"bbox_2d": [...]}, ...]</answer>`` in the sample's frame — a
short fixed think, or with ``sft.cot`` a label-exact description of the differences.

Training is TRL 1.16's ``SFTTrainer`` on a *prompt-completion* conversational dataset
(``prompt`` = the task's chat messages, ``completion`` = one assistant turn, ``images``), so
TRL's vision collator renders prompt + completion with the processor's chat template and the
loss covers only the completion tokens (``completion_only_loss``), ending with the template's
end-of-turn token: the same text GRPO later samples. The result is saved to
``<run_dir>/final`` through ``save_pretrained`` with the processor, ready for ``init_from:``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

    from tasks.registry import Task
    from trainer.config import TrainConfig
    from trainer.metrics import MetricsSink
    from trainer.train import RunResult

log = logging.getLogger(__name__)


def completion_messages(text: str) -> list[dict[str, Any]]:
    """One assistant turn holding ``text`` (typed parts, the layout of the prompt column)."""
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def sft_rows(
    task: Task, split: str | None = None, *, cot: bool = False, think: str | None = None
) -> list[dict[str, Any]]:
    """``{id, prompt, completion, images}`` per sample of ``task``'s ``split``."""
    from tasks.dig.traces import sft_completion

    rows = []
    for sample in task.samples(split):
        rows.append(
            {
                "id": sample.id,
                "prompt": task.messages(sample),
                "completion": completion_messages(sft_completion(sample, cot=cot, think=think)),
                "images": list(sample.images),
            }
        )
    return rows


def sft_dataset(
    task: Task, split: str | None = None, *, cot: bool = False, think: str | None = None
) -> datasets.Dataset:
    """:func:`sft_rows` as a ``datasets.Dataset`` with decoded ``images`` (PIL) for TRL."""
    import datasets

    rows = sft_rows(task, split, cot=cot, think=think)
    columns = {k: [r[k] for r in rows] for k in ("id", "prompt", "completion", "images")}
    ds = datasets.Dataset.from_dict(columns)
    return ds.cast_column("images", datasets.Sequence(datasets.Image()))


def sft_args(cfg: TrainConfig) -> Any:
    """``trl.SFTConfig`` from the run config (``sft.args`` on top of CPU-safe defaults).

    ``max_length`` is off by default: a DiG prompt with two images is longer than TRL's 1024,
    and truncation would cut the completion the loss is about.
    """
    import torch
    from trl import SFTConfig

    on_gpu = torch.cuda.is_available()
    kwargs: dict[str, Any] = {
        "report_to": "none",
        "logging_steps": 1,
        "bf16": on_gpu,
        "use_cpu": not on_gpu,
        "dataloader_num_workers": 0,
        "max_length": None,
        "learning_rate": 1e-3,
        "per_device_train_batch_size": 8,
        "lr_scheduler_type": "constant",
    }
    kwargs.update(cfg.sft.args)
    return SFTConfig(
        output_dir=str(cfg.run_path / "checkpoints"),
        max_steps=cfg.max_steps,
        seed=cfg.seed,
        save_strategy="steps",
        save_steps=cfg.checkpoint.every_steps,
        save_total_limit=cfg.checkpoint.keep,
        **kwargs,
    )


def run_sft(
    cfg: TrainConfig,
    resume: bool = False,
    sinks: Sequence[MetricsSink] = (),
    callbacks: Sequence[Any] = (),
) -> RunResult:
    """Train ``cfg``'s model on the gold completions of its task; save ``<run_dir>/final``."""
    from trl import SFTTrainer

    from tasks import get_task
    from trainer.metrics import JsonlSink, MetricsCallback
    from trainer.tiny import ensure_processor_support, load_processor
    from trainer.train import (
        RunResult,
        checkpoint_step,
        drop_records_after,
        ensure_data,
        last_checkpoint,
        model_path,
    )

    ensure_processor_support()
    path = model_path(cfg)
    task = get_task(cfg.task.name, root=str(ensure_data(cfg)), **cfg.task.options)
    dataset = sft_dataset(task, cfg.task.split, cot=cfg.sft.cot, think=cfg.sft.think)
    start = last_checkpoint(cfg.run_path) if resume else None
    if start is not None:
        drop_records_after(cfg.run_path / "metrics.jsonl", checkpoint_step(start))
    all_sinks = [JsonlSink(cfg.run_path / "metrics.jsonl"), *sinks]
    model_kwargs: dict[str, Any] = {}
    if cfg.model.attn_implementation is not None:
        model_kwargs["attn_implementation"] = cfg.model.attn_implementation
    args = sft_args(cfg)
    if model_kwargs:
        args.model_init_kwargs = {**(args.model_init_kwargs or {}), **model_kwargs}
    trainer = SFTTrainer(
        model=str(path),
        args=args,
        train_dataset=dataset,
        processing_class=load_processor(path),
        callbacks=[MetricsCallback(all_sinks), *callbacks],
    )
    log.info("SFT on %d samples (cot=%s) from %s", len(dataset), cfg.sft.cot, path)
    trainer.train(resume_from_checkpoint=str(start) if start else None)
    final = cfg.run_path / "final"
    trainer.save_model(str(final))
    trainer.processing_class.save_pretrained(str(final))
    return RunResult(cfg.run_path, trainer.state.global_step, start)
