"""CPPO's selection and loss by hand."""

from __future__ import annotations

import pytest
import torch

from trainer.objectives import policy_losses
from trainer.objectives.cppo import cppo_keep, cppo_saving
from trainer.objectives.policy import PolicyInputs, PolicyParams
from trainer.plugin_configs import cppo_keep_count

pytestmark = pytest.mark.torch


def test_keeps_largest_absolute_advantages_per_group() -> None:
    adv = torch.tensor([0.1, -2.0, 1.5, 0.0, 0.3, 0.3, -0.3, 0.9])
    # group 0: |A| = .1, 2, 1.5, 0 -> rows 1, 2; group 1: .3, .3, .3, .9 -> 7, then 4 (tie: earliest)
    assert cppo_keep(adv, 4, 0.5).tolist() == [1, 2, 4, 7]
    assert cppo_keep(adv, 4, 0.25).tolist() == [1, 7]
    assert cppo_keep(adv, 4, 1.0).tolist() == list(range(8))
    assert cppo_keep_count(8, 0.01) == 1 and cppo_keep_count(8, 0.3) == 3
    with pytest.raises(ValueError, match="keep_ratio"):
        cppo_keep(adv, 4, 0.0)
    with pytest.raises(ValueError, match="multiple of group_size"):
        cppo_keep(adv[:7], 4, 0.5)


def test_saving_counts_pruned_tokens() -> None:
    mask = torch.tensor([[1.0, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1]])
    stats = cppo_saving(mask, torch.tensor([0, 2]))
    assert stats["cppo/kept_fraction"] == 0.5
    assert stats["cppo/token_saving"] == pytest.approx(1 - 5 / 9)


def test_loss_pruning_inside_equals_grpo_on_the_kept_rows() -> None:
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(8, 5, generator=g)
    lp = (old + 0.3 * torch.randn(8, 5, generator=g)).requires_grad_()
    adv = torch.randn(8, generator=g)
    mask = (torch.rand(8, 5, generator=g) > 0.2).float()
    mask[:, 0] = 1
    inside, metrics = policy_losses.get("cppo")(
        PolicyInputs(lp, old, adv, mask), PolicyParams(group_size=4, keep_ratio=0.5)
    )
    keep = cppo_keep(adv, 4, 0.5)
    first, _ = policy_losses.get("grpo")(
        PolicyInputs(lp[keep], old[keep], adv[keep], mask[keep]), PolicyParams()
    )
    already, _ = policy_losses.get("cppo")(
        PolicyInputs(lp[keep], old[keep], adv[keep], mask[keep]), PolicyParams()
    )
    assert torch.allclose(inside, first) and torch.allclose(already, first)
    assert metrics["cppo/kept_fraction"] == 0.5
    inside.backward()
    dropped = sorted(set(range(8)) - set(keep.tolist()))
    assert lp.grad[dropped].abs().sum() == 0 and lp.grad[keep].abs().sum() > 0
