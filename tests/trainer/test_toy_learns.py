"""The tiny CPU setting of :mod:`trainer.toy` learns to find the difference: after the toy's
SFT warm start (through TRL's SFTTrainer, from a randomly initialised tiny Qwen2-VL) the
held-out F1 lies above what any image-independent answer can score, with its 95 % CI."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def best_constant_box_f1(eval_root: Path) -> float:
    """F1 of the best fixed answer: one difference per pair, so F1 is 1 on the pairs whose gold
    box is that answer and 0 elsewhere."""
    rows = [json.loads(line) for line in (eval_root / "manifest.jsonl").read_text().splitlines()]
    assert all(len(r["boxes"]) == 1 for r in rows)
    counts = Counter(tuple(r["boxes"][0]) for r in rows)
    return max(counts.values()) / len(rows)


def test_toy_sft_beats_every_image_independent_answer(tmp_path) -> None:
    from services.benchmark.adapters.transformers_vlm import TransformersVLM
    from services.benchmark.runner import RunOptions, run_benchmark
    from services.benchmark.scoring import InProcessScorer
    from services.benchmark.store import MemoryRunStore
    from tasks.registry import get_task
    from trainer.config import TrainConfig
    from trainer.toy import ToySetting
    from trainer.train import run

    setting = dataclasses.replace(ToySetting(), sft_steps=400, n_eval=300)
    train_root, eval_root = tmp_path / "train", tmp_path / "eval"
    setting.generate(train_root, eval_root)
    config = {**setting.sft_config(train_root), "run_dir": str(tmp_path / "sft")}
    run(TrainConfig.model_validate(config))
    task = get_task("dig", root=str(eval_root), **setting.task_options)
    result = run_benchmark(
        task,
        TransformersVLM(
            str(tmp_path / "sft" / "final"), max_new_tokens=setting.eval_max_new_tokens
        ),
        store=MemoryRunStore(),
        scorer=InProcessScorer(),
        options=RunOptions(batch_size=32, n_boot=1000, progress=False, seed=0),
    )
    f1 = next(m for m in result.metrics if m.name == "dig/f1")
    chance = best_constant_box_f1(eval_root)
    assert 0.2 < chance < 0.35  # four cells, roughly balanced
    assert f1.ci_low > chance + 0.05, (f1.value, f1.ci_low, chance)
