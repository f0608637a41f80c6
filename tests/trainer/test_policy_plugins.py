"""GMPO, CPPO, PAPO and GRPO-CARE through the real DevaGRPOTrainer on the tiny Qwen2-VL.

Each trains two optimizer steps with DEVA's diversity and entropy terms on (the plug-ins
compose); GMPO is also checked against TRL's own ``trl.experimental.gmpo.GMPOTrainer`` on
one batch (loss and gradients).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainer.helpers import grpo_args, letter_reward, two_image_rows
from trainer.config import DevaConfig
from trainer.grpo import DevaGRPOTrainer, select_rows
from trainer.plugin_configs import CareConfig, CppoConfig, PapoConfig
from trainer.tiny import load_processor

pytestmark = [pytest.mark.torch, pytest.mark.slow]  # about 60 s on one core

DEVA = DevaConfig.model_validate(
    {
        "diversity": {"enabled": True, "lambda_div": 0.1, "gamma": 0.5},
        "entropy_reg": {"enabled": True, "lambda_reg": 0.1},
    }
)


def _trainer(tiny: Path, out: Path, **kw: Any) -> DevaGRPOTrainer:
    from datasets import Dataset

    from trainer.tiny import ensure_processor_support

    ensure_processor_support()
    args = grpo_args(out, max_steps=2, **kw.pop("args", {}))
    return DevaGRPOTrainer(
        model=str(tiny),
        processing_class=load_processor(tiny),
        reward_funcs=[letter_reward],
        args=args,
        train_dataset=Dataset.from_dict(two_image_rows(4)),
        deva=DEVA,
        **kw,
    )


def _weights(t: DevaGRPOTrainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in t.model.named_parameters() if p.requires_grad}


def _train(t: DevaGRPOTrainer) -> list[dict[str, float]]:
    before = _weights(t)
    t.train()
    after = _weights(t)
    assert any(not torch.equal(before[n], after[n]) for n in before)  # it learned something
    logs = [h for h in t.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) for h in logs)
    assert all("div/loss" in h and "ent/loss" in h for h in logs)  # DEVA terms on
    return logs


@pytest.mark.parametrize(
    ("name", "kw", "metric"),
    [
        ("gmpo", {"policy_loss": "gmpo", "args": {"epsilon": 0.4}}, "gmpo/seq_ratio_mean"),
        ("cppo", {"policy_loss": "cppo", "cppo": CppoConfig(keep_ratio=0.5)}, "cppo/token_saving"),
        ("papo_masked", {"papo": PapoConfig(enabled=True)}, "papo/kl_prcp"),
        ("papo_no_image", {"papo": PapoConfig(enabled=True, view="no_image")}, "papo/kl_prcp"),
        ("care", {"care": CareConfig(enabled=True, ema_decay=0.5)}, "care/bonus_mean"),
    ],
)
def test_trains_two_steps_with_deva_terms(
    tiny_qwen2vl: Path, tmp_path: Path, name: str, kw: dict[str, Any], metric: str
) -> None:
    t = _trainer(tiny_qwen2vl, tmp_path, **kw)
    logs = _train(t)
    assert all(metric in h for h in logs), (name, logs[0].keys())
    if name == "cppo":
        assert all(h["cppo/kept_fraction"] == 0.5 for h in logs)
        assert all(0.0 <= h["cppo/token_saving"] < 1.0 for h in logs)
    if name.startswith("papo"):
        assert all(h["papo/kl_prcp"] > 0.0 for h in logs)  # the views really differ
    if name == "care":
        assert "rewards/care_bonus/mean" in logs[0]
        ref = dict(t._care_ref.named_parameters())
        core = t.accelerator.unwrap_model(t.model)
        moved = [n for n, p in core.named_parameters() if not torch.equal(ref[n], p.detach())]
        assert moved  # the EMA reference trails the policy, it is not a copy of it


def test_cppo_trains_on_the_kept_rows_only(tiny_qwen2vl: Path, tmp_path: Path) -> None:
    t = _trainer(tiny_qwen2vl, tmp_path, policy_loss="cppo", cppo=CppoConfig(keep_ratio=0.5))
    t.model.train()
    torch.manual_seed(0)
    batch = t._generate_and_score_completions([t.train_dataset[0]] * 4)
    assert batch["completion_ids"].shape[0] == 2 and batch["num_images"] == [2, 2]
    assert batch["image_grid_thw"].shape[0] == 4  # two images per kept completion
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(-1).sum())
    keep = torch.tensor([1])
    one = select_rows(batch, keep)
    assert one["prompt_ids"].shape[0] == 1 and one["num_images"] == [2]


def test_gmpo_matches_trl_gmpo_trainer(tiny_qwen2vl: Path, tmp_path: Path) -> None:
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl.experimental.gmpo import GMPOConfig, GMPOTrainer

    ds = Dataset.from_dict(two_image_rows(4))
    base = grpo_args(tmp_path).to_dict()
    keep = {k: base[k] for k in ("per_device_train_batch_size", "num_generations", "seed")}
    cfg = GMPOConfig(
        output_dir=str(tmp_path / "trl"),
        max_completion_length=8,
        bf16=False,
        use_cpu=True,
        report_to="none",
        gradient_checkpointing=False,
        **keep,
    )
    ref = GMPOTrainer(
        model=str(tiny_qwen2vl),
        processing_class=load_processor(tiny_qwen2vl),
        reward_funcs=[letter_reward],
        args=cfg,
        train_dataset=ds,
    )
    ours = DevaGRPOTrainer(
        model=str(tiny_qwen2vl),
        processing_class=load_processor(tiny_qwen2vl),
        reward_funcs=[letter_reward],
        args=cfg,
        train_dataset=ds,
        policy_loss="gmpo",
    )
    assert (ours.epsilon_low, ours.epsilon_high) == (0.4, 0.4)
    for t in (ref, ours):
        t.model.train()
        t.current_gradient_accumulation_steps = 1
    torch.manual_seed(0)
    batch = ref._generate_and_score_completions([ds[0]] * 4)
    g = torch.Generator().manual_seed(1)
    lp = torch.zeros(batch["completion_ids"].shape)
    batch["old_per_token_logps"] = lp + 0.6 * torch.randn(lp.shape, generator=g)
    batch["advantages"] = torch.tensor([1.5, -0.5, 0.8, -1.8])
    with torch.no_grad():  # old = current + noise, so both sides of the log-space clip fire
        cur, _, _ = ours.forward_terms(ours.model, batch, compute_eos=False)[:3]
    batch["old_per_token_logps"] = cur + batch["old_per_token_logps"]
    results = []
    for t in (ref, ours):
        t.model.zero_grad(set_to_none=True)
        loss = t._compute_loss(t.model, dict(batch))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in t.model.named_parameters() if p.grad is not None}
        results.append((float(loss), grads))
    (l_ref, g_ref), (l_ours, g_ours) = results
    assert l_ours == pytest.approx(l_ref, abs=1e-6) and l_ref != 0.0
    assert set(g_ref) == set(g_ours)
    assert max(float((g_ours[k] - g_ref[k]).abs().max()) for k in g_ref) <= 1e-6
    assert max(float(v.abs().max()) for v in g_ref.values()) > 1e-4
