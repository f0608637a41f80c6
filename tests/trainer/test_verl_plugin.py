"""Our losses through verl's policy-loss contract (verl itself needs numpy<2 and Ray, so the
contract is exercised with a registry shaped exactly like ``verl.trainer.ppo.core_algos``; the
same test runs against the real one where verl is importable)."""

import importlib.util

import pytest
import torch

from trainer.objectives import policy_losses
from trainer.objectives.policy import PolicyInputs, PolicyParams
from trainer.verl_plugin import NAMES, register_into_verl


def verl_like_registry():
    registry = {}

    def register_policy_loss(name):
        def decorator(func):
            registry[name] = func
            return func

        return decorator

    return registry, register_policy_loss


def batch(seed=0, B=3, T=5):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=g)
    new = (old + 0.3 * torch.randn(B, T, generator=g)).requires_grad_()
    adv = torch.randn(B, 1, generator=g).expand(B, T).contiguous()
    mask = torch.ones(B, T)
    mask[0, 3:] = 0
    return old, new, adv, mask


def test_every_loss_is_registered_under_prl_names():
    registry, register = verl_like_registry()
    names = register_into_verl(register)
    assert sorted(names) == sorted(registry) and len(names) == 2 * len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_verl_call_matches_our_objective(name):
    registry, register = verl_like_registry()
    register_into_verl(register)
    old, new, adv, mask = batch()
    config = {"clip_ratio": 0.2, "clip_ratio_low": 0.2, "clip_ratio_high": 0.28}
    loss, metrics = registry[f"prl_{name}"](old, new, adv, mask, "token-mean", config, None)
    ours, _ = policy_losses.get(name)(
        PolicyInputs(logps=new, old_logps=old, advantages=adv, mask=mask),
        PolicyParams(epsilon_low=0.2, epsilon_high=0.28, max_completion_length=5),
    )
    assert torch.allclose(loss, ours)
    assert "actor/prl_policy_loss" in metrics
    loss.backward()
    assert (
        new.grad is not None and new.grad[0, 3:].abs().sum() == 0
    )  # masked tokens get no gradient


def test_pgpo_variant_scales_token_advantages():
    registry, register = verl_like_registry()
    register_into_verl(register)
    old, new, adv, mask = batch(1)
    weights = torch.rand_like(adv) * 2
    config = {"clip_ratio": 0.2, "policy_loss": {"pgpo_weights": weights}}
    with_w, _ = registry["prl_pgpo_grpo"](old, new, adv, mask, "token-mean", config)
    direct, _ = registry["prl_grpo"](
        old, new, adv * weights, mask, "token-mean", {"clip_ratio": 0.2}
    )
    assert torch.allclose(with_w, direct)
    no_w, _ = registry["prl_pgpo_grpo"](old, new, adv, mask, "token-mean", {"clip_ratio": 0.2})
    plain, _ = registry["prl_grpo"](old, new, adv, mask, "token-mean", {"clip_ratio": 0.2})
    assert torch.allclose(no_w, plain)


@pytest.mark.skipif(
    importlib.util.find_spec("verl") is None, reason="verl is not installed (needs numpy<2, Ray)"
)
def test_registration_into_real_verl():
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    register_into_verl()
    assert get_policy_loss_fn("prl_dapo").__name__ == "prl_dapo"
