"""DevaGRPOTrainer against TRL's own GRPOTrainer on the same batch, and the EOS log-probs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainer.helpers import grpo_args, letter_reward, two_image_rows
from trainer.config import DevaConfig
from trainer.grpo import DevaGRPOTrainer
from trainer.tiny import load_processor

pytestmark = pytest.mark.torch

CASES = [  # (our registry name, TRL loss_type, TRL importance_sampling_level)
    ("grpo", "grpo", "token"),
    ("bnpo", "bnpo", "token"),
    ("dr_grpo", "dr_grpo", "token"),
    ("dapo", "dapo", "token"),
    ("gspo", "grpo", "sequence"),
]


def deva_config(
    *, diversity: bool = False, entropy_reg: bool = False, lambda_reg: float = 0.1, **div: Any
) -> DevaConfig:
    """The run config's ``deva`` section with the given switches (``div``: L_div's fields)."""
    return DevaConfig.model_validate(
        {
            "diversity": {"enabled": diversity, **div},
            "entropy_reg": {"enabled": entropy_reg, "lambda_reg": lambda_reg},
        }
    )


@pytest.fixture(scope="module")
def pair(tiny_qwen2vl: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from datasets import Dataset
    from trl import GRPOTrainer

    from trainer.tiny import ensure_processor_support

    ensure_processor_support()
    ds = Dataset.from_dict(two_image_rows(4))
    out = tmp_path_factory.mktemp("grpo-eq")
    args = grpo_args(out, epsilon_high=0.28)
    ref = GRPOTrainer(
        model=str(tiny_qwen2vl),
        processing_class=load_processor(tiny_qwen2vl),
        reward_funcs=[letter_reward],
        args=args,
        train_dataset=ds,
    )
    ours = DevaGRPOTrainer(
        model=str(tiny_qwen2vl),
        processing_class=load_processor(tiny_qwen2vl),
        reward_funcs=[letter_reward],
        args=args,
        train_dataset=ds,
    )
    assert type(ours.processing_class).__name__ == "Qwen2VLImageOnlyProcessor"
    for t in (ref, ours):
        t.model.train()
        t.current_gradient_accumulation_steps = 1
    torch.manual_seed(0)
    batch = ref._generate_and_score_completions([ds[0]] * 4)
    assert batch["image_grid_thw"].shape[0] == 8  # two images per prompt x 4 completions
    with torch.no_grad():
        lp, _, _ = ref._get_per_token_logps_and_entropies(
            ref.model,
            torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1),
            torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1),
            batch["completion_ids"].size(1),
            pixel_values=batch["pixel_values"],
            image_grid_thw=batch["image_grid_thw"],
            num_images=batch["num_images"],
            mm_token_type_ids=batch.get("mm_token_type_ids"),
        )
    g = torch.Generator().manual_seed(1)
    # off-policy old logps and varied advantages so that clipping is exercised on both sides
    batch["old_per_token_logps"] = lp + 0.3 * torch.randn(lp.shape, generator=g)
    batch["advantages"] = torch.tensor([1.5, -0.5, 0.8, -1.8])
    batch["ref_per_token_logps"] = lp + 0.2 * torch.randn(lp.shape, generator=g)
    return {"ref": ref, "ours": ours, "batch": batch}


def _loss_and_grads(trainer: Any, batch: dict[str, Any]) -> tuple[float, dict[str, torch.Tensor]]:
    trainer.model.zero_grad(set_to_none=True)
    loss = trainer._compute_loss(trainer.model, dict(batch))
    loss.backward()
    grads = {
        n: p.grad.detach().clone()
        for n, p in trainer.model.named_parameters()
        if p.grad is not None
    }
    return float(loss.detach()), grads


@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize(("name", "loss_type", "level"), CASES)
def test_matches_trl_loss_and_gradients(
    pair: dict[str, Any], name: str, loss_type: str, level: str, beta: float
) -> None:
    ref, ours, batch = pair["ref"], pair["ours"], pair["batch"]
    for t in (ref, ours):
        t.loss_type, t.importance_sampling_level, t.beta = loss_type, level, beta
    ours.policy_loss_name = name
    loss_ref, g_ref = _loss_and_grads(ref, batch)
    loss_ours, g_ours = _loss_and_grads(ours, batch)
    assert loss_ours == pytest.approx(loss_ref, abs=1e-6)
    assert loss_ref != 0.0
    assert set(g_ours) == set(g_ref) and len(g_ref) > 10
    worst = max(float((g_ours[k] - g_ref[k]).abs().max()) for k in g_ref)
    assert worst <= 1e-6
    assert max(float(v.abs().max()) for v in g_ref.values()) > 1e-4  # a real gradient


def test_eos_logps_equal_full_softmax(pair: dict[str, Any]) -> None:
    ours, batch = pair["ours"], pair["batch"]
    model = ours.model
    logps, ent, eos, _ = ours.forward_terms(model, batch)
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    attn = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    with torch.no_grad():
        out = model(
            input_ids=input_ids,
            attention_mask=attn,
            pixel_values=batch["pixel_values"],
            image_grid_thw=batch["image_grid_thw"],
            mm_token_type_ids=batch["mm_token_type_ids"],
        )
    k = batch["completion_ids"].size(1)
    full = torch.log_softmax(out.logits[:, -k - 1 : -1].float() / ours.temperature, -1)
    mask = batch["completion_mask"].bool()
    assert torch.allclose(eos[mask], full[..., ours.eos_id][mask], atol=1e-5)
    sel = full.gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(logps[mask], sel[mask], atol=1e-5)
    h = -(full.exp() * full).sum(-1)
    assert ent is not None and torch.allclose(ent[mask], h[mask], atol=1e-4)
    assert eos.requires_grad


def test_deva_terms_add_to_the_loss_with_a_reference(
    pair: dict[str, Any], tiny_qwen2vl: Path, tmp_path: Path
) -> None:
    from datasets import Dataset

    ds = Dataset.from_dict(two_image_rows(4))
    trainer = DevaGRPOTrainer(
        model=str(tiny_qwen2vl),
        processing_class=load_processor(tiny_qwen2vl),
        reward_funcs=[letter_reward],
        args=grpo_args(tmp_path),
        train_dataset=ds,
        deva=deva_config(
            diversity=True, lambda_div=0.5, gamma=0.5, entropy_reg=True, lambda_reg=2.0
        ),
    )
    assert trainer.ref_model is not None
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    batch = dict(pair["batch"])
    batch.update(trainer.reference_terms(batch, batch_size=None))
    # reference == initial policy: entropy gap is exactly 0 at the start
    total = float(trainer._compute_loss(trainer.model, dict(batch)).detach())
    metrics = trainer._metrics["train"]
    assert metrics["ent/loss"][-1] == pytest.approx(0.0, abs=1e-10)
    l_div = metrics["div/loss"][-1]
    assert l_div > 0.0
    trainer.deva = deva_config()
    base = float(trainer._compute_loss(trainer.model, dict(batch)).detach())
    assert total == pytest.approx(base + 0.5 * l_div, rel=1e-5)


def test_peft_reference_is_the_base_model(
    pair: dict[str, Any], tiny_qwen2vl: Path, tmp_path: Path
) -> None:
    from datasets import Dataset
    from peft import LoraConfig

    trainer = DevaGRPOTrainer(
        model=str(tiny_qwen2vl),
        processing_class=load_processor(tiny_qwen2vl),
        reward_funcs=[letter_reward],
        args=grpo_args(tmp_path),
        train_dataset=Dataset.from_dict(two_image_rows(4)),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
        deva=deva_config(diversity=True, entropy_reg=True),
    )
    assert trainer.ref_model is None
    batch = dict(pair["batch"])
    before = trainer.reference_terms(batch, batch_size=None)
    with torch.no_grad():  # move the adapter: the policy changes, the reference must not
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
    after = trainer.reference_terms(batch, batch_size=None)
    policy_lp, _, _, _ = trainer.forward_terms(trainer.model, batch)
    mask = batch["completion_mask"].bool()
    for key in ("ref_per_token_logps", "ref_entropies", "ref_eos_logps"):
        assert torch.allclose(before[key][mask], after[key][mask], atol=1e-6), key
    assert not torch.allclose(policy_lp[mask], after["ref_per_token_logps"][mask], atol=1e-3)


@pytest.mark.parametrize(
    ("beta", "terms"),
    [
        (0.0, deva_config(diversity=True, entropy_reg=True, gamma=0.5)),
        (0.04, deva_config(diversity=True, gamma=0.5)),  # KL and L_div together
    ],
)
def test_trains_with_gradient_accumulation_and_deva(
    tiny_qwen2vl: Path, tmp_path: Path, beta: float, terms: DevaConfig
) -> None:
    from datasets import Dataset

    args = grpo_args(
        tmp_path,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=1,
        beta=beta,
    )
    trainer = DevaGRPOTrainer(
        model=str(tiny_qwen2vl),
        processing_class=load_processor(tiny_qwen2vl),
        reward_funcs=[letter_reward],
        args=args,
        train_dataset=Dataset.from_dict(two_image_rows(4)),
        deva=terms,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert trainer.state.global_step == 1 and "div/loss" in logs[-1]
    assert ("ent/loss" in logs[-1]) == terms.entropy_reg.enabled and ("kl" in logs[-1]) == (
        beta != 0
    )
    moved = sum(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())
    assert moved > 10
    ref = dict(trainer.ref_model.named_parameters())
    assert all(torch.equal(before[n], ref[n]) for n in ref)  # the reference stays frozen
