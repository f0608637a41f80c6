"""Small builders shared by trainer tests (datasets of two-image prompts, trainers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def two_image_rows(n: int, seed: int = 0) -> dict[str, list[Any]]:
    """n rows: conversational prompt + two 64x64 images (DiG shape) + an 'answer' column."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {"prompt": [], "images": [], "answer": []}
    for i in range(n):
        a = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        b = a.copy()
        b[8:24, 8:24] = 255 - b[8:24, 8:24]
        rows["images"].append([Image.fromarray(a), Image.fromarray(b)])
        rows["prompt"].append([{"role": "user", "content": f"Box every difference ({i})."}])
        rows["answer"].append("a")
    return rows


def letter_reward(completions: list[Any], answer: list[str], **_: Any) -> list[float]:
    """Count of the answer letter in the completion text (a cheap reward with variance)."""
    out = []
    for c, a in zip(completions, answer, strict=True):
        text = c[0]["content"] if isinstance(c, list) else c
        out.append(float(text.count(a)) + 0.01 * len(text))
    return out


def grpo_args(out: Path, **overrides: Any) -> Any:
    from trl import GRPOConfig

    base: dict[str, Any] = {
        "output_dir": str(out),
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "max_completion_length": 8,
        "learning_rate": 1e-3,
        "bf16": False,
        "use_cpu": True,
        "report_to": "none",
        "save_strategy": "no",
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "seed": 0,
        "dataloader_num_workers": 0,
        "log_completions": False,
    }
    base.update(overrides)
    return GRPOConfig(**base)
