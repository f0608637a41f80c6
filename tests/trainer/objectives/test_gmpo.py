"""GMPO against a hand computation of its geometric-mean objective."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.objectives import policy_losses
from trainer.objectives.policy import PolicyInputs, PolicyParams

pytestmark = pytest.mark.torch


def test_geometric_mean_with_log_space_clip_by_hand() -> None:
    # seq 0 (A = +1): log-ratios 0.1, 0.6 (above ε_high = 0.4 -> 0.4), 5.0 masked
    # seq 1 (A = −2): log-ratios −0.7 (below −ε_low: max(−0.7, −0.4) = −0.4, clipped), 0.2
    lr = torch.tensor([[0.1, 0.6, 5.0], [-0.7, 0.2, 0.0]], requires_grad=True)
    x = PolicyInputs(
        logps=lr,
        old_logps=torch.zeros(2, 3),
        advantages=torch.tensor([1.0, -2.0]),
        mask=torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]),
    )
    loss, metrics = policy_losses.get("gmpo")(x, PolicyParams(epsilon_low=0.4, epsilon_high=0.4))
    r0 = math.exp((0.1 + 0.4) / 2)
    r1 = math.exp((-0.4 + 0.2) / 2)
    assert float(loss) == pytest.approx((-1.0 * r0 + 2.0 * r1) / 2)
    loss.backward()
    # d/dlr of −A·exp(mean): clipped token 1 of seq 0 has no gradient; masked token none
    assert lr.grad[0].tolist() == pytest.approx([-r0 / 2 / 2, 0.0, 0.0])
    assert lr.grad[1].tolist() == pytest.approx([0.0, 2.0 * r1 / 2 / 2, 0.0])
    assert metrics["clip_ratio/high_mean"] == pytest.approx(1 / 4)
    assert metrics["clip_ratio/low_mean"] == pytest.approx(1 / 4)


def test_on_policy_gmpo_equals_grpo_value_and_gradient() -> None:
    """ρ ≡ 1: both are −mean_i A_i, and d/dlogp_t = −A_i / |o_i| / B for both."""
    lp = torch.randn(3, 4)
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    adv = torch.tensor([0.5, -1.0, 2.0])
    out = {}
    for name in ("gmpo", "grpo"):
        x = lp.clone().requires_grad_()
        loss, _ = policy_losses.get(name)(PolicyInputs(x, lp, adv, mask), PolicyParams())
        loss.backward()
        out[name] = (float(loss), x.grad)
    assert out["gmpo"][0] == pytest.approx(out["grpo"][0]) == pytest.approx(-float(adv.mean()))
    assert torch.allclose(out["gmpo"][1], out["grpo"][1])


def test_penalty_is_averaged_per_sequence() -> None:
    x = PolicyInputs(
        logps=torch.zeros(1, 2),
        old_logps=torch.zeros(1, 2),
        advantages=torch.tensor([0.0]),
        mask=torch.tensor([[1.0, 1.0]]),
        penalty=torch.tensor([[0.2, 0.4]]),
    )
    assert float(policy_losses.get("gmpo")(x, PolicyParams())[0]) == pytest.approx(0.3)
