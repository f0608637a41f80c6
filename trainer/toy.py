"""The tiny DiG setting that learns on CPU: data, model size and run configs in one place.

Used by ``prl demo`` (base → SFT → GRPO + DEVA through the trainer service),
``benchmarks/deva_ablation.py`` (the DEVA and DiG ablations) and the ``slow`` learning test,
so all three train the same thing.

Why these choices (the experiments are in docs/training.md):

* **data**: DiG raster pairs at 56×56 with 1–2 large objects on a 2×2 lattice of ground cells
  and exactly one difference (colour change, added or removed object: the ``single``
  curriculum stage). At patch 14 with the 2×2 merge each cell is exactly one LLM image token
  and each gold box is a whole cell. The raster ``position`` ground puts each pixel's place
  into its colour (a fresh Qwen2-VL has rotary positions only, so its features carry none).
  4000 training pairs: with 800 the model memorises pairs instead of learning to compare.
* **prompt**: the DiG task's ``prompt="minimal"`` variant (a few words). The tiny tokenizer is
  byte-level: the ``short`` prompt is ~190 tokens of constant text next to 8 image tokens, and
  a model trained from scratch then needs twice as many steps before it reads the images.
* **coordinates**: integer pixels of the 56×56 image.
* **model**: a Qwen2-VL built from config (hidden 128, 4 layers, ViT width 64), saved with
  ``save_pretrained`` and loaded back through the real path.
* **SFT** on gold completions with a short fixed think ("I compare."), lr 1e-3 with warmup
  and cosine decay (a constant 2e-3 diverges after breaking the plateau), batch 16.
* **GRPO** then samples groups of 8 for 8 prompts per step at temperature 1, lr 6e-5
  (1e-4 loses the answer format in bursts), rewarded by the reward service over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: DiG's reward ablation (DiG, CVPR 2026, reward table): format only, + mIoU, + F1, full.
DIG_REWARDS: dict[str, dict[str, Any]] = {
    "format": {"components": [{"name": "format"}], "aggregate": {"method": "sum"}},
    "format+miou": {
        "components": [{"name": "format"}, {"name": "miou"}],
        "aggregate": {"method": "sum"},
    },
    "format+f1": {
        "components": [{"name": "format"}, {"name": "f1"}],
        "aggregate": {"method": "sum"},
    },
    "full": {
        "components": [{"name": "format"}, {"name": "f1"}, {"name": "miou"}],
        "aggregate": {"method": "sum"},
    },
}

ALIGNED_MEAN = {
    "components": [
        {"name": "format"},
        {"name": "f1"},
        {"name": "miou"},
        {"name": "alignment", "weight": 0.25},
    ],
    "aggregate": {"method": "weighted"},
}
"""DiG's components plus DEVA's alignment reward, each scaled to [0, 1] by its range, averaged
(arithmetic: the step before DEVA's harmonic aggregation)."""

DEVA_DIG_REWARD = {
    "components": [
        {"name": "format"},
        {"name": "f1"},
        {"name": "miou"},
        {"name": "alignment", "weight": 0.25},
    ],
    "aggregate": {"method": "harmonic"},
}
"""DEVA on DiG: format, F1 and mIoU with the hypervolume alignment reward (weight 1/4, its
floor scaled to half credit, as in the ``deva_*`` presets), harmonic mean."""


@dataclass(frozen=True)
class Deva:
    """Which DEVA plug-ins a GRPO run uses (the component-accumulation axis of DEVA's table)."""

    diversity: bool = False
    entropy_reg: bool = False
    alignment: bool = False
    harmonic: bool = False
    lambda_div: float = 0.01  # 0.1 makes the answer format drift at this scale (docs/training.md)
    gamma: float = 0.5
    lambda_reg: float = 0.1

    def reward(self) -> dict[str, Any]:
        if self.harmonic:
            return DEVA_DIG_REWARD
        return ALIGNED_MEAN if self.alignment else DIG_REWARDS["full"]


#: DEVA's component accumulation (DEVA, CVPR 2026, ablation table), in order.
DEVA_ROWS: dict[str, Deva] = {
    "grpo": Deva(),
    "+div": Deva(diversity=True),
    "+div+reg": Deva(diversity=True, entropy_reg=True),
    "+div+reg+align": Deva(diversity=True, entropy_reg=True, alignment=True),
    "+div+reg+align+harmonic": Deva(
        diversity=True, entropy_reg=True, alignment=True, harmonic=True
    ),
}
FULL_DEVA = DEVA_ROWS["+div+reg+align+harmonic"]


@dataclass(frozen=True)
class ToySetting:
    """Sizes and hyper-parameters of the tiny setting (defaults: the ``prl demo`` run)."""

    image_size: int = 56
    grid: int = 2
    kinds: tuple[str, ...] = ("color", "add", "remove")
    objects: tuple[int, int] = (1, 2)
    stage: str = "single"
    ground: str = "position"
    n_train: int = 4000
    n_eval: int = 1000
    data_seed: int = 0
    model: dict[str, int] = field(
        default_factory=lambda: {
            "hidden": 128,
            "layers": 4,
            "heads": 4,
            "vision_width": 64,
            "vision_depth": 2,
            "max_pixels": 56 * 56,
        }
    )
    prompt: str = "minimal"
    think: str | None = "I compare."
    sft_steps: int = 500
    sft_lr: float = 1e-3
    sft_batch: int = 16
    sft_warmup: int = 30
    grpo_steps: int = 100
    grpo_lr: float = 6e-5
    num_generations: int = 8
    prompts_per_step: int = 8
    temperature: float = 1.0
    max_completion_length: int = 96
    eval_max_new_tokens: int = 96
    seed: int = 0

    @property
    def task_options(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "coords": "pixel"}

    def scene(self) -> Any:
        """The DiG scene options: large objects, on a ``grid``×``grid`` lattice if ``grid``."""
        from tasks.dig.scene import SceneOptions

        if not self.grid:
            return SceneOptions(self.objects[0], self.objects[1], ("large",))
        return SceneOptions(
            self.objects[0], self.objects[1], ("large",), grid=self.grid, kinds=self.kinds
        )

    def generate(self, train_root: Path, eval_root: Path) -> None:
        """Training and held-out DiG sets (different seeds) unless they exist."""
        from tasks.dig import generate

        size = (self.image_size, self.image_size)
        for root, n, seed in (
            (train_root, self.n_train, self.data_seed),
            (eval_root, self.n_eval, self.data_seed + 1000),
        ):
            if not (Path(root) / "manifest.jsonl").exists():
                generate(
                    root,
                    n,
                    split=self.stage,
                    size=size,
                    seed=seed,
                    progress=False,
                    scene=self.scene(),
                    renderer_options={"ground": self.ground},
                )

    def model_source(self) -> dict[str, Any]:
        return {"tiny": "qwen2vl", "seed": self.seed, "shape": dict(self.model)}

    def sft_config(self, train_root: Path, *, cot: bool = False) -> dict[str, Any]:
        """Run config (``prl train`` / trainer service) of the SFT warm start."""
        return {
            "method": "sft",
            "model": self.model_source(),
            "task": {"name": "dig", "root": str(train_root), "options": self.task_options},
            "max_steps": self.sft_steps,
            "seed": self.seed,
            "checkpoint": {"every_steps": self.sft_steps, "keep": 1},
            "sft": {
                "cot": cot,
                "think": None if cot else self.think,
                "args": {
                    "learning_rate": self.sft_lr,
                    "per_device_train_batch_size": self.sft_batch,
                    "lr_scheduler_type": "cosine",
                    "warmup_steps": self.sft_warmup,
                    "adam_beta2": 0.98,
                },
            },
        }

    def grpo_config(
        self,
        train_root: Path,
        *,
        init_from: Path | str | None,
        reward_url: str,
        deva: Deva = FULL_DEVA,
        reward: dict[str, Any] | None = None,
        api_key: str | None = None,
        path_root: Path | str | None = None,
        steps: int | None = None,
    ) -> dict[str, Any]:
        """Run config of a GRPO run from ``init_from`` (the SFT checkpoint), DEVA as asked.

        ``reward`` overrides the reward spec (the DiG reward ablation); with
        ``deva.alignment`` each sample goes with image B's path (relative to ``path_root``, the
        embedding service's data root), the query and an attention-derived patch mask.
        """
        config: dict[str, Any] = {
            "model": {**self.model_source(), "attn_implementation": "eager"},
            "task": {"name": "dig", "root": str(train_root), "options": self.task_options},
            "reward": {"url": reward_url, "reward": reward or deva.reward()},
            "loss_type": "dapo",
            "max_steps": steps or self.grpo_steps,
            "seed": self.seed,
            "deva": {
                "diversity": {
                    "enabled": deva.diversity,
                    "lambda_div": deva.lambda_div,
                    "gamma": deva.gamma,
                },
                "entropy_reg": {"enabled": deva.entropy_reg, "lambda_reg": deva.lambda_reg},
            },
            "checkpoint": {"every_steps": steps or self.grpo_steps, "keep": 1},
            "grpo": {
                "per_device_train_batch_size": self.num_generations * self.prompts_per_step,
                "num_generations": self.num_generations,
                "max_completion_length": self.max_completion_length,
                "learning_rate": self.grpo_lr,
                "lr_scheduler_type": "constant",
                "beta": 0.0,
                "temperature": self.temperature,
            },
        }
        if init_from is not None:
            config["init_from"] = str(init_from)
        if api_key is not None:
            config["reward"]["api_key"] = api_key
        if deva.alignment:
            config["alignment"] = {
                "send_inputs": True,
                "image": "path",
                "path_root": str(path_root or train_root),
                "mask_from_attention": True,
                "mask_threshold": 0.5,
            }
        return config


QUICK = ToySetting(
    n_train=16,
    n_eval=8,
    sft_steps=2,
    grpo_steps=2,
    sft_batch=4,
    sft_warmup=0,
    num_generations=4,
    prompts_per_step=1,
    max_completion_length=24,
    eval_max_new_tokens=48,
    model={
        "hidden": 64,
        "layers": 2,
        "heads": 4,
        "vision_width": 32,
        "vision_depth": 2,
        "max_pixels": 56 * 56,
    },
)
"""A fast path with the same wiring (``prl demo --quick``, tests): nothing learns here."""
