"""Model-side pieces of PAPO and GRPO-CARE: patch masking, answer spans, the EMA reference,
and the CARE bonus computed by the trainer against a full-softmax reference forward."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.trainer.helpers import grpo_args, letter_reward, two_image_rows
from trainer.loss_views import answer_token_mask, ema_update, mask_image_patches
from trainer.tiny import load_processor

pytestmark = pytest.mark.torch


def test_mask_image_patches_zeroes_whole_tokens_per_image() -> None:
    grid = torch.tensor([[1, 4, 4], [1, 2, 4]])  # 16 + 8 patch rows = 4 + 2 LLM tokens
    pv = torch.arange(1, 24 * 3 + 1, dtype=torch.float32).view(24, 3)
    out = mask_image_patches(
        pv, grid, 0.5, merge_size=2, generator=torch.Generator().manual_seed(0)
    )
    zero = (out == 0).all(-1)
    groups = zero.view(6, 4)
    assert bool((groups.all(-1) | ~groups.any(-1)).all())  # a token is masked whole or not
    assert int(groups[:4].all(-1).sum()) == 2 and int(groups[4:].all(-1).sum()) == 1
    assert torch.equal(out[~zero], pv[~zero]) and pv.min() > 0  # input untouched
    with pytest.raises(ValueError, match="covers"):
        mask_image_patches(pv[:20], grid, 0.5)


def test_answer_token_mask_with_the_tiny_tokenizer(tiny_qwen2vl: Path) -> None:
    tok = load_processor(tiny_qwen2vl).tokenizer
    texts = ["<think>ab</think><answer>xyz</answer>", "<answer>a</answer> <answer>qq", "none"]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, ids))
    mask = answer_token_mask(ids, tok, width)
    for i, row in enumerate(ids):
        inside = tok.decode([t for t, m in zip(row, mask[i][: len(row)], strict=True) if m])
        assert inside == ["xyz", "qq", ""][i]


def test_ema_update_moves_the_reference_by_one_minus_decay() -> None:
    ref, pol = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = {n: p.detach().clone() for n, p in ref.named_parameters()}
    ema_update(ref, pol, 0.75)
    for n, p in pol.named_parameters():
        want = 0.75 * before[n] + 0.25 * p.detach()
        assert torch.allclose(dict(ref.named_parameters())[n], want)
    with pytest.raises(ValueError, match="decay"):
        ema_update(ref, pol, 1.0)


def test_care_bonus_of_the_trainer_by_hand(tiny_qwen2vl: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from trl.data_utils import prepare_multimodal_messages

    from trainer.grpo import DevaGRPOTrainer
    from trainer.objectives.care import care_consistency_bonus
    from trainer.plugin_configs import CareConfig
    from trainer.tiny import ensure_processor_support

    ensure_processor_support()
    ds = Dataset.from_dict(two_image_rows(4))
    care = CareConfig(enabled=True, ema_decay=0.0, confidence_cap=None)
    t = DevaGRPOTrainer(
        model=str(tiny_qwen2vl),
        processing_class=load_processor(tiny_qwen2vl),
        reward_funcs=[letter_reward],
        args=grpo_args(tmp_path),
        train_dataset=ds,
        care=care,
    )
    assert t.reward_func_names == ["letter_reward", "care_bonus"]
    tok = t.processing_class.tokenizer
    texts = ["<think>a</think><answer>b</answer>", "<think>c</think><answer>dd</answer>",
             "<think>e</think>no answer", "<answer>b</answer>"]  # fmt: skip
    ids = [tok(x, add_special_tokens=False)["input_ids"] for x in texts]
    row = ds[0]
    rows = [dict(row) for _ in texts]
    prompts = [prepare_multimodal_messages(r["prompt"], images=r["images"]) for r in rows]
    rewards = torch.tensor([[0.9, float("nan")], [0.8, float("nan")], [0.1, float("nan")],
                            [0.2, float("nan")]])  # fmt: skip
    t.model.eval()
    bonus = t.care_bonuses(rows, prompts, ids, rewards)
    # by hand: decay 0 makes the reference the policy itself; c_i over the answer tokens
    inputs, cmask = t._rebuild_model_inputs(rows, prompts, ids)
    width = cmask.shape[1]
    with torch.no_grad():
        logits = t.model(**inputs).logits[:, -width - 1 : -1]
    logp = torch.log_softmax(logits.float(), -1).gather(-1, inputs["input_ids"][:, -width:, None])
    ans = answer_token_mask(ids, tok, width)
    c = torch.where(
        ans.any(-1), torch.exp((logp[..., 0] * ans).sum(-1) / ans.sum(-1).clamp(min=1)), 0.0
    )
    want, _ = care_consistency_bonus(torch.tensor([0.9, 0.8, 0.1, 0.2]), c, 4)
    assert torch.allclose(bonus, want, atol=1e-5)
    assert float(bonus[0] + bonus[1]) > 0  # rows 0 and 1 are the accurate ones (≥ mean 0.5)
    assert float(bonus[2]) == float(bonus[3]) == 0.0
