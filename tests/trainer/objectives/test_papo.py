"""PAPO's perception loss by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.objectives import regularizers

pytestmark = pytest.mark.torch


def test_perception_loss_by_hand_and_its_gradient_raises_the_kl() -> None:
    lp = torch.tensor([[-0.5, -1.0, -3.0]], requires_grad=True)
    lm = torch.tensor([[-1.5, -1.0, -0.1]], requires_grad=True)
    ent = torch.tensor([[1.0, 2.0, 9.0]], requires_grad=True)
    ment = torch.tensor([[3.0, 1.0, 9.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    fn = regularizers.get("papo_perception")
    loss, metrics = fn(lp, lm, ent, ment, mask, gamma=0.1, eta_policy=0.2, eta_masked=0.3)
    k3 = [math.exp(-1.0) + 1.0 - 1.0, 0.0]  # d = lm − lp: −1, 0
    kl = sum(k3) / 2
    assert float(loss) == pytest.approx(-0.1 * kl + 0.2 * 1.5 + 0.3 * 2.0)
    assert metrics["papo/kl_prcp"] == pytest.approx(kl)
    loss.backward()
    # descending the loss moves the masked view's log-prob of the token further down (KL ↑)
    assert lm.grad[0, 0] > 0 and lp.grad[0, 0] < 0
    assert ent.grad[0].tolist() == pytest.approx([0.1, 0.1, 0.0])
    assert ment.grad[0].tolist() == pytest.approx([0.15, 0.15, 0.0])


def test_identical_views_have_zero_kl() -> None:
    lp = torch.randn(2, 4)
    loss, m = regularizers.get("papo_perception")(
        lp, lp, torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(2, 4)
    )
    assert float(loss) == 0.0 and m["papo/kl_prcp"] == 0.0
