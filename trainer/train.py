"""Run one training job from a :class:`~trainer.config.TrainConfig` (``prl train``).

Run dir layout::

    <run_dir>/config.yaml        the resolved config
    <run_dir>/base-model/        the tiny model, when ``model.tiny`` is set
    <run_dir>/checkpoints/       TRL/transformers checkpoints (checkpoint-<step>/)
    <run_dir>/metrics.jsonl      one record per step (trainer.metrics)

Perception terms and switches: ``pgpo`` and ``alignment`` go to :class:`~trainer.grpo.DevaGRPOTrainer`;
``curriculum`` serves one task split per stage through a
:class:`~trainer.curriculum.StagedDataset` switched by a
:class:`~trainer.curriculum.CurriculumCallback` (state saved in each checkpoint, restored on
``--resume``; the active stage index is logged as ``curriculum/stage_index``);
``train_vision_tower`` / ``train_projector`` are applied with
:func:`trainer.pivot.set_vision_trainable` before training. ``method: dpo`` runs
:func:`run_dpo_method` instead (PIVOT preference training), ``method: sft``
:func:`trainer.sft.run_sft` (gold completions, TRL's SFTTrainer). ``init_from`` starts any
method from a trained checkpoint (e.g. GRPO from an SFT run's ``final/``).
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
from trainer.objectives.registry import policy_loss_spec
from trainer.rewards import RewardClientConfig, make_reward_func

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    global_step: int
    resumed_from: Path | None


def init_checkpoint(init_from: str | Path) -> Path:
    """The checkpoint dir ``init_from`` names: itself, or a run dir's ``final/``.

    Raises ``FileNotFoundError`` saying what was looked for.
    """
    path = Path(init_from)
    for candidate in (path, path / "final"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"init_from: {path} holds no checkpoint (no config.json in it or in its final/)"
    )


def model_path(cfg: TrainConfig) -> Path:
    """The checkpoint to train: ``init_from``, ``model.path``, or a tiny model built once into
    the run dir (``model.tiny`` with ``model.shape``)."""
    if cfg.init_from is not None:
        return init_checkpoint(cfg.init_from)
    if cfg.model.path is not None:
        return Path(cfg.model.path)
    from trainer.tiny import build_tiny_vlm

    out = cfg.run_path / "base-model"
    if not (out / "config.json").exists():
        assert cfg.model.tiny is not None
        build_tiny_vlm(cfg.model.tiny, out, seed=cfg.model.seed, **cfg.model.shape.model_dump())
    return out


def ensure_data(cfg: TrainConfig) -> Path:
    """The task root; DiG data is generated first when asked and missing."""
    root = Path(cfg.task.root)
    gen = cfg.task.generate
    if gen is not None and not (root / "manifest.jsonl").exists():
        from tasks.dig.generate import generate_once

        generate_once(
            root,
            gen.n,
            renderer=gen.renderer,
            seed=gen.seed,
            split=gen.split,
            size=gen.size,
            progress=False,
        )
    return root


def split_dataset(cfg: TrainConfig, split: str | None) -> Any:
    """One split of the task as a TRL dataset (+ ``image_path``: the row's last image file)."""
    from tasks import get_task
    from tasks.hf import hf_rows, to_hf_dataset

    task = get_task(cfg.task.name, root=str(ensure_data(cfg)), **cfg.task.options)
    ds = to_hf_dataset(task, split)
    if cfg.alignment.send_inputs:
        rows, _ = hf_rows(task, split)
        ds = ds.add_column("image_path", [str(r["images"][-1]) for r in rows])
    return ds


def train_dataset(cfg: TrainConfig) -> Any:
    """The task's split as a TRL dataset; DiG data is generated first when asked and missing."""
    return split_dataset(cfg, cfg.task.split)


def staged_dataset(cfg: TrainConfig) -> Any:
    """A :class:`~trainer.curriculum.StagedDataset` with one task split per curriculum stage."""
    from trainer.curriculum import StagedDataset

    assert cfg.curriculum is not None
    stages = {st.name: split_dataset(cfg, st.name) for st in cfg.curriculum.stages}
    return StagedDataset(stages)


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
    spec = policy_loss_spec(cfg.loss_type)
    kwargs.update(spec.grpo_defaults)  # e.g. GMPO's log-space clip ε = 0.4
    kwargs.update(cfg.grpo)
    if cfg.model.attn_implementation is not None:
        init = dict(kwargs.get("model_init_kwargs") or {})
        init["attn_implementation"] = cfg.model.attn_implementation
        kwargs["model_init_kwargs"] = init
    return GRPOConfig(
        output_dir=str(cfg.run_path / "checkpoints"),
        max_steps=cfg.max_steps,
        seed=cfg.seed,
        loss_type=spec.trl_loss_type,
        importance_sampling_level=spec.importance_sampling_level,
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


def reward_config(cfg: TrainConfig) -> RewardClientConfig:
    """The reward client settings of a run (alignment inputs included)."""
    al = cfg.alignment
    return RewardClientConfig(
        url=cfg.reward.url,
        reward=cfg.reward.reward,
        api_key=cfg.reward.api_key,
        timeout_s=cfg.reward.timeout_s,
        retries=cfg.reward.retries,
        send_inputs=al.send_inputs,
        image_mode=al.image,
        path_root=al.path_root or cfg.task.root,
    )


def build_trainer(
    cfg: TrainConfig, sinks: Sequence[MetricsSink] = (), callbacks: Sequence[Any] = ()
) -> Any:
    """A ready ``DevaGRPOTrainer`` for ``cfg`` (model, data, HTTP reward, metrics callback)."""
    from trainer.grpo import DevaGRPOTrainer
    from trainer.metrics import MetricsCallback
    from trainer.tiny import ensure_processor_support, load_processor

    ensure_processor_support()
    path = model_path(cfg)
    reward = make_reward_func(reward_config(cfg))
    extra: list[Any] = []
    providers: list[Any] = []
    if cfg.curriculum is not None:
        from trainer.curriculum import Curriculum, CurriculumCallback

        staged = staged_dataset(cfg)
        curriculum = Curriculum(cfg.curriculum)
        extra.append(CurriculumCallback(curriculum, staged))
        providers.append(lambda: {"curriculum/stage_index": float(curriculum.stage_index)})
        dataset = staged.as_hf_dataset()
    else:
        dataset = train_dataset(cfg)
    trainer = DevaGRPOTrainer(
        model=str(path),
        reward_funcs=[reward],
        args=grpo_args(cfg),
        train_dataset=dataset,
        processing_class=load_processor(path),
        callbacks=[*extra, MetricsCallback(sinks, providers), *callbacks],
        deva=cfg.deva,
        pgpo=cfg.pgpo,
        alignment=cfg.alignment,
        policy_loss=cfg.loss_type,
        cppo=cfg.cppo,
        papo=cfg.papo,
        care=cfg.care,
    )
    apply_vision_switches(cfg, trainer.model)
    return trainer


def apply_vision_switches(cfg: TrainConfig, model: Any) -> None:
    """PIVOT: train or freeze the vision tower and the projector (``None`` leaves them as is)."""
    if cfg.train_vision_tower is None and cfg.train_projector is None:
        return
    from trainer.pivot import set_vision_trainable

    counts = set_vision_trainable(
        model, tower=cfg.train_vision_tower, projector=cfg.train_projector
    )
    log.info("vision switches: %s", counts)


def run(
    cfg: TrainConfig,
    resume: bool = False,
    sinks: Sequence[MetricsSink] = (),
    callbacks: Sequence[Any] = (),
) -> RunResult:
    """Train; with ``resume`` continue from the newest checkpoint in the run dir (if any).

    ``callbacks``: extra ``transformers.TrainerCallback`` objects (e.g. a job's cancel hook).
    ``method: dpo`` runs :func:`run_dpo_method` (no checkpoints to resume from).
    """
    run_dir = cfg.run_path
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    )
    if cfg.method == "dpo":
        return run_dpo_method(cfg)
    if cfg.method == "sft":
        from trainer.sft import run_sft

        return run_sft(cfg, resume=resume, sinks=sinks, callbacks=callbacks)
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


# ---------------------------------------------------------------------------------- DPO


def collect_rollouts(cfg: TrainConfig, model_dir: Path) -> list[Any]:
    """Reward-ranked rollout groups: ``dpo.generations`` samples per task row, scored.

    Each row's prompt is rendered by the processor with its images and sampled
    (``temperature``, ``max_new_tokens``; seed ``cfg.seed + row index``); the completions are
    scored by the run's reward service in one event loop (the same reward function as GRPO).
    """
    import asyncio

    import torch

    from trainer.dpo import RolloutGroup
    from trainer.tiny import load_vlm

    model, processor = load_vlm(model_dir)
    model.eval()
    ds = train_dataset(cfg)
    n_rows = len(ds) if cfg.dpo.max_rows is None else min(len(ds), cfg.dpo.max_rows)
    g = cfg.dpo.generations
    tok = processor.tokenizer
    rows, texts = [], []
    for i in range(n_rows):
        row = ds[i]
        images = row.get("images") or [row["image"]]
        prompt = processor.apply_chat_template(
            row["prompt"], add_generation_prompt=True, tokenize=False
        )
        enc = processor(images=[images] * g, text=[prompt] * g, return_tensors="pt")
        torch.manual_seed(cfg.seed + i)
        with torch.no_grad():
            out = model.generate(
                **enc,
                do_sample=True,
                temperature=cfg.dpo.temperature,
                max_new_tokens=cfg.dpo.max_new_tokens,
                pad_token_id=tok.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        rows.append((row, images))
        texts.append(tok.batch_decode(new, skip_special_tokens=True))
    reward = make_reward_func(reward_config(cfg))

    async def score_all() -> list[list[float]]:
        scored = []
        for (row, images), completions in zip(rows, texts, strict=True):
            cols = {k: [row[k]] * g for k in ("solution", "frame", "query", "id") if k in row}
            if "image_path" in row:
                cols["image_path"] = [row["image_path"]] * g
            scored.append(await reward(completions=completions, images=[images] * g, **cols))
        return scored

    rewards = asyncio.run(score_all())
    return [
        RolloutGroup(
            prompt=row["prompt"], completions=c, rewards=r, images=images, id=str(row["id"])
        )
        for (row, images), c, r in zip(rows, texts, rewards, strict=True)
    ]


def run_dpo_method(cfg: TrainConfig) -> RunResult:
    """PIVOT preference training: pairs from reward-ranked rollouts, then ``trl.DPOTrainer``.

    Rollouts come from ``dpo.rollouts`` (JSONL) or are sampled and scored here
    (:func:`collect_rollouts`); :func:`trainer.dpo.build_preference_pairs` takes best vs
    worst of each group (ties skipped); the trained model goes to ``<run_dir>/final`` and a
    summary to ``<run_dir>/dpo_result.json``. ``train_vision_tower`` / ``train_projector``
    (when set) override ``dpo.run``'s switches.
    """
    from trainer.dpo import build_preference_pairs, load_rollout_groups, run_dpo

    path = model_path(cfg)
    if cfg.dpo.rollouts is not None:
        groups = load_rollout_groups(cfg.dpo.rollouts)
    else:
        groups = collect_rollouts(cfg, path)
    (cfg.run_path / "rollouts.jsonl").write_text(
        "".join(
            json.dumps({"id": g.id, "completions": g.completions, "rewards": g.rewards}) + "\n"
            for g in groups
        )
    )
    pairs = build_preference_pairs(groups, min_margin=cfg.dpo.min_margin)
    switches = {
        k: v
        for k, v in (
            ("train_vision_tower", cfg.train_vision_tower),
            ("train_projector", cfg.train_projector),
        )
        if v is not None
    }
    run_cfg = cfg.dpo.run.model_copy(update={"seed": cfg.seed, **switches})
    out = cfg.run_path / "final"
    result = run_dpo(path, pairs, out, run_cfg)
    result["n_groups"] = len(groups)
    (cfg.run_path / "dpo_result.json").write_text(json.dumps(result, indent=1))
    return RunResult(cfg.run_path, int(result["steps"]), None)
