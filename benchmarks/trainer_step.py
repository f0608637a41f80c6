"""Trainer step time: plain TRL GRPOTrainer vs DevaGRPOTrainer with DEVA off vs DEVA on.

Targets: ours-off / TRL ≤ 1.05; DEVA-on / TRL ≤ 1.5. For context a fourth variant,
``trl_kl``, is TRL with a KL penalty (β = 0.04), which pays for the same reference forward.

Perception-term rows, each on top of DEVA-on: ``ours_pgpo`` (+ PGPO: the with-image and no-image
no-grad forwards of the visual dependency, once per generation batch) and ``ours_align``
(+ the DEVA alignment attention mask: one eager-attention no-grad forward with
``output_attentions`` before scoring; the policy is loaded with ``attn_implementation="eager"``,
which that needs). Target: PGPO-on / DEVA-on ≤ 1.4 (``ratio_pgpo_on_vs_deva_on``);
``ratio_align_on_vs_deva_on`` is reported the same way. The alignment *reward* itself (reward → embedding service
HTTP) runs in the services and is measured by their own benchmarks, not here.

The newer baselines' rows (GMPO, CPPO, PAPO, GRPO-CARE), each against ``ours_grpo`` (our trainer with ``loss_type="grpo"``, DEVA off)
in the same round-robin: ``ours_gmpo`` (GMPO loss, ε = 0.4 in log space), ``ours_cppo``
(CPPO, keep_ratio 0.5: the pruning runs in the timed loss step, then the forward on the kept
half), ``ours_papo`` (PAPO: a second, masked-image forward with gradient) and ``ours_care``
(GRPO-CARE: the EMA update and the reference forward over the rebuilt prompt + completion,
once per generation batch, timed in the loss step). Reported as
``ratio_<loss>_vs_grpo`` and ``train_step_ratio_<loss>_vs_grpo``.

Same tiny random Qwen2-VL, same batch (one prompt with two images × G completions, generated
once by TRL). Two figures:

* ``step_s_median`` (loss step): what a training step adds on top of generation, where the
  variants differ: for DEVA-on the reference forward (no grad; once per generation batch, as
  in training), then loss forward + backward + optimizer step;
* ``train_step_s_median``: the whole step, generation and reward included, with the same
  sampling seed per iteration for every variant (learning rate 0, so weights stay identical
  and the completions are the same). Variants run round-robin in one
process so machine drift hits all three alike; the median is reported. Peak RSS is measured
per variant in a fresh subprocess that builds only that variant (``ru_maxrss``; with a tiny
model it is dominated by the imported libraries). Prints one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/trainer_step.py [--iters 20] [--completion-len 32]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VARIANTS = (
    "trl",
    "ours_off",
    "ours_deva",
    "trl_kl",
    "ours_pgpo",
    "ours_align",
    "ours_grpo",
    "ours_gmpo",
    "ours_cppo",
    "ours_papo",
    "ours_care",
)
#: the newer baselines' losses, each timed against ``ours_grpo``
NEW_LOSSES = ("gmpo", "cppo", "papo", "care")


def _dataset(n: int) -> Any:
    import numpy as np
    from datasets import Dataset
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for _ in range(n):
        a = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        b = a.copy()
        b[10:30, 10:30] = 0
        images.append([Image.fromarray(a), Image.fromarray(b)])
    prompt = [{"role": "user", "content": "Box every difference between the two images."}]
    return Dataset.from_dict({"prompt": [prompt] * n, "images": images})


def _reward(completions: list[Any], **_: Any) -> list[float]:
    return [float(len(c[0]["content"] if isinstance(c, list) else c)) for c in completions]


def _trainers(
    model_dir: Path, out: Path, gens: int, length: int, variants: tuple[str, ...]
) -> dict[str, Any]:
    from trl import GRPOConfig, GRPOTrainer

    from trainer.config import AlignmentConfig, DevaConfig, PGPOConfig
    from trainer.grpo import DevaGRPOTrainer
    from trainer.plugin_configs import CareConfig, CppoConfig, PapoConfig
    from trainer.tiny import load_processor

    def make_args(beta: float, **extra: Any) -> Any:
        return GRPOConfig(
            output_dir=str(out),
            per_device_train_batch_size=gens,
            num_generations=gens,
            max_completion_length=length,
            learning_rate=0.0,  # an optimizer step of the same cost, but weights stay identical
            bf16=False,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            gradient_checkpointing=False,
            seed=0,
            beta=beta,
            **extra,
        )

    args = make_args(0.0)
    ds = _dataset(4)
    common = {
        "model": str(model_dir),
        "processing_class": load_processor(model_dir),  # the image-only processor (no torchvision)
        "reward_funcs": [_reward],
        "args": args,
        "train_dataset": ds,
    }
    deva = DevaConfig.model_validate(
        {
            "diversity": {"enabled": True, "lambda_div": 0.1, "gamma": 0.5},
            "entropy_reg": {"enabled": True, "lambda_reg": 0.1},
        }
    )
    kl_args = make_args(0.04)
    eager_args = make_args(0.0)
    eager_args.model_init_kwargs = {"attn_implementation": "eager"}
    pgpo = PGPOConfig(enabled=True, threshold=0.5, threshold_mode="quantile")
    align = AlignmentConfig(send_inputs=True, mask_from_attention=True)
    grpo = {**common, "args": make_args(0.0, loss_type="grpo")}
    gmpo = {**common, "args": make_args(0.0, loss_type="grpo", epsilon=0.4)}
    build = {
        "trl": lambda: GRPOTrainer(**common),
        "trl_kl": lambda: GRPOTrainer(**{**common, "args": kl_args}),
        "ours_off": lambda: DevaGRPOTrainer(**common),
        "ours_deva": lambda: DevaGRPOTrainer(**common, deva=deva),
        "ours_pgpo": lambda: DevaGRPOTrainer(**common, deva=deva, pgpo=pgpo),
        "ours_align": lambda: DevaGRPOTrainer(
            **{**common, "args": eager_args}, deva=deva, alignment=align
        ),
        "ours_grpo": lambda: DevaGRPOTrainer(**grpo),
        "ours_gmpo": lambda: DevaGRPOTrainer(**gmpo, policy_loss="gmpo"),
        "ours_cppo": lambda: DevaGRPOTrainer(
            **grpo, policy_loss="cppo", cppo=CppoConfig(keep_ratio=0.5)
        ),
        "ours_papo": lambda: DevaGRPOTrainer(**grpo, papo=PapoConfig(enabled=True)),
        "ours_care": lambda: DevaGRPOTrainer(**grpo, care=CareConfig(enabled=True)),
    }
    trainers = {name: build[name]() for name in variants}
    for t in trainers.values():
        t.model.train()
        t.current_gradient_accumulation_steps = 1
        t.create_optimizer()
    return trainers


def _step(name: str, trainer: Any, batch: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    inputs = dict(batch)
    if name in ("ours_deva", "ours_pgpo", "ours_align"):
        inputs.update(trainer.reference_terms(inputs, batch_size=None))
    if name == "trl_kl":  # TRL's own reference pass (done in generation when beta != 0)
        inputs["ref_per_token_logps"] = _trl_reference(trainer, inputs)
    elif name == "ours_pgpo":  # PGPO's two no-grad forwards (once per generation batch)
        trainer._apply_pgpo(inputs, "train")
    elif name == "ours_align":  # the attention-mask forward (once per generation batch)
        rows, prompts, ids = _mask_inputs(trainer, inputs)
        trainer.alignment_masks(rows, prompts, ids)
    elif name == "ours_cppo":  # pruning to the top-|A| half (once per generation batch)
        inputs = trainer._apply_cppo(inputs, "train")
    elif name == "ours_care":  # EMA step + reference forward (once per generation batch)
        import torch

        rows, prompts, ids = _mask_inputs(trainer, inputs)
        rewards = torch.stack([torch.rand(len(ids)), torch.full((len(ids),), float("nan"))], 1)
        trainer.care_bonuses(rows, prompts, ids, rewards)
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def _mask_inputs(trainer: Any, b: dict[str, Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """(rows, multimodal prompts, completion ids) as TRL passes them to ``_calculate_rewards``."""
    from trl.data_utils import prepare_multimodal_messages

    n = b["completion_ids"].shape[0]
    row = trainer.train_dataset[0]
    rows = [dict(row) for _ in range(n)]
    prompts = [prepare_multimodal_messages(r["prompt"], images=r["images"]) for r in rows]
    ids = [
        c[m.bool()].tolist() for c, m in zip(b["completion_ids"], b["completion_mask"], strict=True)
    ]
    return rows, prompts, ids


def _trl_reference(trainer: Any, b: dict[str, Any]) -> Any:
    import torch

    with torch.no_grad():
        lp, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.ref_model,
            torch.cat([b["prompt_ids"], b["completion_ids"]], 1),
            torch.cat([b["prompt_mask"], b["completion_mask"]], 1),
            b["completion_ids"].size(1),
            pixel_values=b.get("pixel_values"),
            image_grid_thw=b.get("image_grid_thw"),
            num_images=b.get("num_images"),
            mm_token_type_ids=b.get("mm_token_type_ids"),
        )
    return lp


def _train_step(name: str, trainer: Any, row: dict[str, Any], gens: int, seed: int) -> float:
    """Generation (+ reference terms for DEVA) + loss + backward + optimizer step."""
    import torch

    torch.manual_seed(seed)  # same completions for every variant (weights never change)
    t0 = time.perf_counter()
    batch = trainer._generate_and_score_completions([row] * gens)
    loss = trainer._compute_loss(trainer.model, batch)
    loss.backward()
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def _setup(
    gens: int, length: int, variants: tuple[str, ...] = VARIANTS
) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    from trainer.tiny import build_tiny_vlm, ensure_processor_support

    ensure_processor_support()
    tmp = Path(tempfile.mkdtemp(prefix="trainer-step-bench-"))
    model_dir = build_tiny_vlm("qwen2vl", tmp / "model", seed=0)
    trainers = _trainers(model_dir, tmp / "out", gens, length, variants)
    torch.manual_seed(0)
    first = trainers[variants[0]]
    batch = first._generate_and_score_completions([first.train_dataset[0]] * gens)
    for key in ("ref_per_token_logps", "ref_entropies", "ref_eos_logps", "sequence_advantages"):
        batch.pop(key, None)  # the variants with a reference recompute them in the timed step
    return trainers, batch


def measure(iters: int, gens: int, length: int, budget_s: float) -> dict[str, Any]:
    trainers, batch = _setup(gens, length)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for name in VARIANTS:  # warm-up
        _step(name, trainers[name], batch)
    start = time.perf_counter()
    for _ in range(iters):
        for name in VARIANTS:
            times[name].append(_step(name, trainers[name], batch))
        if time.perf_counter() - start > budget_s:
            break
    med = {name: statistics.median(ts) for name, ts in times.items()}
    full: dict[str, list[float]] = {v: [] for v in VARIANTS}
    row = trainers["trl"].train_dataset[0]
    start = time.perf_counter()
    for i in range(iters):
        for name in VARIANTS:
            full[name].append(_train_step(name, trainers[name], row, gens, seed=1000 + i))
        if time.perf_counter() - start > budget_s:
            break
    fmed = {name: statistics.median(ts) for name, ts in full.items()}
    return {
        "iters": len(times["trl"]),
        "batch": {
            "completions": gens,
            "completion_tokens": int(batch["completion_mask"].sum()),
            "seq_len": int(batch["prompt_ids"].shape[1] + batch["completion_ids"].shape[1]),
            "images_per_prompt": 2,
        },
        "step_s_median": {k: round(v, 5) for k, v in med.items()},
        "ratio_ours_off_vs_trl": round(med["ours_off"] / med["trl"], 4),
        "ratio_deva_on_vs_trl": round(med["ours_deva"] / med["trl"], 4),
        "ratio_deva_on_vs_trl_with_kl": round(med["ours_deva"] / med["trl_kl"], 4),
        "ratio_pgpo_on_vs_deva_on": round(med["ours_pgpo"] / med["ours_deva"], 4),
        "ratio_align_on_vs_deva_on": round(med["ours_align"] / med["ours_deva"], 4),
        **{f"ratio_{x}_vs_grpo": round(med[f"ours_{x}"] / med["ours_grpo"], 4) for x in NEW_LOSSES},
        "train_step_iters": len(full["trl"]),
        "train_step_s_median": {k: round(v, 5) for k, v in fmed.items()},
        "train_step_ratio_ours_off_vs_trl": round(fmed["ours_off"] / fmed["trl"], 4),
        "train_step_ratio_deva_on_vs_trl": round(fmed["ours_deva"] / fmed["trl"], 4),
        "train_step_ratio_deva_on_vs_trl_with_kl": round(fmed["ours_deva"] / fmed["trl_kl"], 4),
        "train_step_ratio_pgpo_on_vs_deva_on": round(fmed["ours_pgpo"] / fmed["ours_deva"], 4),
        "train_step_ratio_align_on_vs_deva_on": round(fmed["ours_align"] / fmed["ours_deva"], 4),
        **{
            f"train_step_ratio_{x}_vs_grpo": round(fmed[f"ours_{x}"] / fmed["ours_grpo"], 4)
            for x in NEW_LOSSES
        },
        "targets": {
            "ours_off_vs_trl": 1.05,
            "deva_on_vs_trl": 1.5,
            "pgpo_on_vs_deva_on": 1.4,
        },
    }


def _peak_rss_child(variant: str, gens: int, length: int) -> None:
    trainers, batch = _setup(gens, length, (variant,))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3):
        _step(variant, trainers[variant], batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss = _current_rss_mb()
    print(
        json.dumps(
            {
                "peak_rss_mb": round(peak / 1024, 1),
                "peak_before_steps_mb": round(base / 1024, 1),
                "rss_after_steps_mb": rss,
            }
        )
    )


def _current_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def peak_rss(gens: int, length: int) -> dict[str, Any]:
    out = {}
    for variant in VARIANTS:
        cmd = [sys.executable, __file__, "--child", variant, "--gens", str(gens)]
        cmd += ["--completion-len", str(length)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
        out[variant] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--gens", type=int, default=4)
    ap.add_argument("--completion-len", type=int, default=32)
    ap.add_argument("--budget-s", type=float, default=120.0, help="stop timing after this long")
    ap.add_argument("--no-rss", action="store_true", help="skip the per-variant RSS subprocesses")
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    a = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)
    if a.child:
        _peak_rss_child(a.child, a.gens, a.completion_len)
        return
    result = measure(a.iters, a.gens, a.completion_len, a.budget_s)
    if not a.no_rss:
        result["peak_rss"] = peak_rss(a.gens, a.completion_len)
    result["device"] = "cpu"
    result["omp_threads"] = os.environ.get("OMP_NUM_THREADS")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
