"""Preference training of the vision encoder (PIVOT) with TRL's ``DPOTrainer``.

PIVOT (arXiv 2510.16333) trains the vision encoder of an MLLM by preference optimisation and
shows it "sees better" than after SFT. Our pairs come from reward-ranked rollouts: for each
GRPO group (one prompt, G completions scored by the reward service) the best completion is
*chosen* and the worst *rejected*; groups whose rewards tie (zero variance, or a spread not
above ``min_margin``) carry no preference and are skipped.

:func:`build_preference_pairs` is pure; :func:`run_dpo` loads a Qwen-VL checkpoint, sets the
PIVOT switches (:func:`trainer.pivot.set_vision_trainable`) and runs ``trl.DPOTrainer``
(TRL 1.16, conversational + ``images`` rows, ``DataCollatorForVisionPreference``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)


class RolloutGroup(BaseModel):
    """One prompt with its sampled completions and their scalar rewards."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    prompt: str | list[dict[str, Any]]
    completions: list[str]
    rewards: list[float]
    images: list[Any] | None = None
    id: str | None = None


def _as_conversation(prompt: str | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A conversational prompt without image parts (TRL re-inserts them from ``images``)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    out = []
    for message in prompt:
        content = message["content"]
        if isinstance(content, list):
            content = [p for p in content if p.get("type") not in ("image", "video")]
            if all(p.get("type") == "text" for p in content):
                content = "".join(p.get("text", "") for p in content)
        out.append({**message, "content": content})
    return out


def build_preference_pairs(
    groups: Iterable[RolloutGroup | Mapping[str, Any]],
    *,
    min_margin: float = 0.0,
    with_rewards: bool = False,
) -> list[dict[str, Any]]:
    """DPO rows from reward-ranked GRPO groups: best vs worst completion of each group.

    For group ``g`` with rewards ``r_1..r_G`` (NaN rewards — "does not apply" in TRL — are
    ignored): ``chosen = argmax r`` (first on ties), ``rejected = argmin r`` (last on ties).
    The group is skipped when fewer than two completions have a reward, when
    ``max r − min r ≤ min_margin`` (ties; ``min_margin = 0`` skips exactly the zero-variance
    groups), or when the chosen and rejected texts are identical.

    Returns rows ``{"prompt": [messages], "chosen": [assistant message], "rejected": [...],
    "images": [...]}`` (``images`` only when the group has images), the conversational format
    of TRL's ``DPOTrainer``; with ``with_rewards`` also ``chosen_reward``/``rejected_reward``
    (drop them before training).
    """
    rows = []
    skipped = 0
    for raw in groups:
        g = raw if isinstance(raw, RolloutGroup) else RolloutGroup.model_validate(raw)
        if len(g.completions) != len(g.rewards):
            raise ValueError(
                f"group {g.id!r}: {len(g.completions)} completions but {len(g.rewards)} rewards"
            )
        scored = [
            (i, float(r)) for i, r in enumerate(g.rewards) if r is not None and not math.isnan(r)
        ]
        if len(scored) < 2:
            skipped += 1
            continue
        best = max(scored, key=lambda x: (x[1], -x[0]))
        worst = min(scored, key=lambda x: (x[1], -x[0]))
        if best[1] - worst[1] <= min_margin or g.completions[best[0]] == g.completions[worst[0]]:
            skipped += 1
            continue
        row: dict[str, Any] = {
            "prompt": _as_conversation(g.prompt),
            "chosen": [{"role": "assistant", "content": g.completions[best[0]]}],
            "rejected": [{"role": "assistant", "content": g.completions[worst[0]]}],
        }
        if g.images:
            row["images"] = list(g.images)
        if with_rewards:
            row["chosen_reward"], row["rejected_reward"] = best[1], worst[1]
        rows.append(row)
    logger.info(
        "preference pairs: %d built, %d groups skipped (ties or too few scores)", len(rows), skipped
    )
    return rows


def load_rollout_groups(path: str | Path) -> list[RolloutGroup]:
    """Rollout groups from a JSONL file, one group per line.

    Line: ``{"id"?, "prompt": str | [messages], "completions": [str], "rewards": [float],
    "images"?: [path]}``; relative image paths are read from the file's directory (PIL, RGB).
    This is the form ``prl train --method dpo`` takes (e.g. dumped from GRPO rollouts scored by
    the reward service's group endpoint).
    """
    import json

    from PIL import Image

    path = Path(path)
    groups = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
        images = []
        for ref in data.get("images") or []:
            img_path = Path(ref) if Path(ref).is_absolute() else path.parent / ref
            with Image.open(img_path) as im:
                images.append(im.convert("RGB"))
        data["images"] = images or None
        groups.append(RolloutGroup.model_validate(data))
    return groups


class DPORunConfig(BaseModel):
    """Settings of :func:`run_dpo` (CPU-test friendly defaults; GPU runs set bf16 etc.)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    beta: float = Field(
        0.1, gt=0, description="DPO β: how far the policy may move from the reference model"
    )
    loss_type: str = Field(
        "sigmoid", description="trl.DPOConfig loss_type ('sigmoid' is the DPO paper's loss)"
    )
    learning_rate: float = Field(1e-5, gt=0, description="AdamW learning rate")
    max_steps: int = Field(100, ge=1, description="optimizer steps")
    per_device_train_batch_size: int = Field(2, ge=1, description="preference pairs per device")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="micro-batches accumulated per optimizer step"
    )
    max_length: int | None = Field(
        None, description="truncate prompt + completion to this many tokens; None: TRL default"
    )
    train_vision_tower: bool = Field(True, description="train the vision tower (PIVOT: yes)")
    train_projector: bool = Field(True, description="train the vision→text projector (merger)")
    train_language_model: bool = Field(
        False, description="train the language model too (PIVOT trains the encoder only)"
    )
    bf16: bool = Field(False, description="bfloat16 mixed precision (GPU runs)")
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in backward to save memory"
    )
    use_cpu: bool | None = Field(None, description="None: CPU when no CUDA device is present")
    seed: int = Field(0, description="seed of the DPO trainer (data order, dropout)")
    logging_steps: int = Field(1, description="log the DPO metrics every this many steps")
    save_strategy: str = Field(
        "no",
        description="trl save_strategy for intermediate checkpoints; the final model is "
        "always saved",
    )


def _freeze_language_model(model: Any, trainable: bool) -> None:
    from trainer.pivot import find_visual

    visual_ids = {id(p) for p in find_visual(model).parameters()}
    for p in model.parameters():
        if id(p) not in visual_ids:
            p.requires_grad_(trainable)


def run_dpo(
    model_dir: str | Path,
    pairs: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    config: DPORunConfig | None = None,
) -> dict[str, Any]:
    """Train a Qwen-VL checkpoint on preference ``pairs`` with ``trl.DPOTrainer``; save to ``out_dir``.

    The PIVOT switches decide what is trained: the vision tower, the projector (merger) and
    the language model separately (default: tower + projector, language model frozen — the
    encoder-only preference training of PIVOT). The reference model is the frozen initial
    model (TRL's default when ``ref_model`` is None). The trained model and its processor are
    saved with ``save_pretrained`` into ``out_dir``, so :func:`trainer.pivot.
    export_vision_encoder` can take the encoder out.

    Returns ``{"out_dir", "steps", "train_loss", "n_pairs", "trainable": TrainableCounts dict}``.
    """
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from trainer.pivot import set_vision_trainable
    from trainer.tiny import load_vlm

    cfg = config or DPORunConfig()
    if not pairs:
        raise ValueError(
            "no preference pairs: every group tied (zero reward variance) or had < 2 scores"
        )
    out_dir = Path(out_dir)
    model, processor = load_vlm(model_dir)
    _freeze_language_model(model, cfg.train_language_model)
    counts = set_vision_trainable(
        model, tower=cfg.train_vision_tower, projector=cfg.train_projector
    )
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            "nothing to train: vision tower, projector and language model are all frozen"
        )
    columns = ("prompt", "chosen", "rejected", "images")
    dataset = Dataset.from_list([{k: row[k] for k in columns if k in row} for row in pairs])
    use_cpu = cfg.use_cpu if cfg.use_cpu is not None else not torch.cuda.is_available()
    args = DPOConfig(
        output_dir=str(out_dir),
        beta=cfg.beta,
        loss_type=[cfg.loss_type],
        learning_rate=cfg.learning_rate,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=cfg.max_length,
        bf16=cfg.bf16,
        gradient_checkpointing=cfg.gradient_checkpointing,
        use_cpu=use_cpu,
        seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        save_strategy=cfg.save_strategy,
        report_to="none",
        dataloader_num_workers=0,
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    result = trainer.train()
    trainer.save_model(str(out_dir))
    processor.save_pretrained(str(out_dir))
    return {
        "out_dir": str(out_dir),
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "n_pairs": len(pairs),
        "trainable": counts.__dict__,
    }
