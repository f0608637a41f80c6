from __future__ import annotations

import math

import pytest
import torch

from trainer.objectives import policy_losses
from trainer.objectives.policy import PolicyInputs, PolicyParams, k3_kl

pytestmark = pytest.mark.torch


def _inputs(logps: torch.Tensor, old: torch.Tensor, adv: list[float], mask: list[list[int]]):
    return PolicyInputs(
        logps=logps, old_logps=old, advantages=torch.tensor(adv), mask=torch.tensor(mask).float()
    )


def test_registry_names() -> None:
    family = ["bnpo", "dapo", "dr_grpo", "grpo", "gspo"]
    assert policy_losses.names() == sorted([*family, "cppo", "gmpo"])
    assert sorted(n for n, spec in policy_losses.items() if spec.trl_exact) == family
    from trainer.objectives.registry import BUILTIN_POLICY_LOSSES

    assert list(BUILTIN_POLICY_LOSSES) == policy_losses.names()  # the torch-free list agrees
    with pytest.raises(KeyError, match="did you mean 'grpo'"):
        policy_losses.get("grpoo")


def test_on_policy_reductions_by_hand() -> None:
    # ratio 1 everywhere => ℓ_t = −A_i on masked tokens
    lp = torch.zeros(2, 3, requires_grad=True)
    x = _inputs(lp, lp.detach(), [1.0, -2.0], [[1, 1, 0], [1, 1, 1]])
    p = PolicyParams(max_completion_length=4, token_normalizer=10.0)
    expect = {
        "grpo": (-1.0 + 2.0) / 2,  # per-seq means −1 and +2
        "bnpo": (-1 * 2 + 2 * 3) / 5,
        "dr_grpo": (-1 * 2 + 2 * 3) / (2 * 4),
        "dapo": (-1 * 2 + 2 * 3) / 10,
        "gspo": (-1.0 + 2.0) / 2,
    }
    for name, value in expect.items():
        loss, _ = policy_losses.get(name)(x, p)
        assert float(loss) == pytest.approx(value), name
    lp.grad = None
    policy_losses.get("grpo")(x, p)[0].backward()
    # d/dlogp of −w·A with w = exp(lp − old) = 1: −A / n_i / B ; masked token gets 0
    assert lp.grad.flatten().tolist() == pytest.approx([-0.25, -0.25, 0.0, 1 / 3, 1 / 3, 1 / 3])


def test_clipping_stops_gradient_on_the_active_side() -> None:
    lp = torch.tensor([[math.log(2.0), math.log(0.5)]], requires_grad=True)
    x = _inputs(lp, torch.zeros(1, 2), [1.0], [[1, 1]])
    loss, metrics = policy_losses.get("bnpo")(x, PolicyParams(epsilon_low=0.2, epsilon_high=0.28))
    # token 0: w = 2 > 1.28 with A > 0 -> clipped, constant −1.28; token 1: w = .5, min picks w·A
    assert float(loss) == pytest.approx((-1.28 - 0.5) / 2)
    loss.backward()
    assert lp.grad.flatten().tolist() == pytest.approx([0.0, -0.5 / 2])
    assert metrics["clip_ratio/high_mean"] == pytest.approx(0.5)


def test_gspo_uses_one_sequence_ratio() -> None:
    lp = torch.tensor([[0.1, -0.1, 5.0]], requires_grad=True)
    x = _inputs(lp, torch.zeros(1, 3), [-1.0], [[1, 1, 0]])
    loss, _ = policy_losses.get("gspo")(x, PolicyParams())
    # mean log-ratio over the 2 masked tokens is 0 => w = 1, loss = −A = 1
    assert float(loss) == pytest.approx(1.0)
    loss.backward()
    assert lp.grad.flatten().tolist() == pytest.approx([0.5, 0.5, 0.0])


def test_penalty_and_two_sided_clip() -> None:
    lp = torch.tensor([[math.log(3.0)]])
    x = PolicyInputs(lp, torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1))
    # A < 0: −min(w·A, clip(w)·A) = w = 3 ; with δ = 2 the ratio is capped: 2
    assert float(policy_losses.get("grpo")(x, PolicyParams())[0]) == pytest.approx(3.0)
    assert float(policy_losses.get("grpo")(x, PolicyParams(delta=2.0))[0]) == pytest.approx(2.0)
    xp = PolicyInputs(
        lp, torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1), penalty=torch.ones(1, 1)
    )
    assert float(policy_losses.get("grpo")(xp, PolicyParams())[0]) == pytest.approx(4.0)


def test_k3_kl_is_zero_at_equality_and_positive_elsewhere() -> None:
    lp = torch.tensor([-1.0, -2.0, -0.5])
    assert k3_kl(lp, lp).abs().max() == 0
    ref = torch.tensor([-1.5, -1.0, -0.5])
    kl = k3_kl(lp, ref)
    assert float(kl[0]) == pytest.approx(math.exp(-0.5) + 0.5 - 1)
    assert bool((kl[:2] > 0).all())
