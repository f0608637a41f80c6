"""Our losses through verl's policy-loss contract, with a registry shaped like
``verl.trainer.ppo.core_algos`` (verl pins transformers < 5.11, so it is not in this
environment); tests/peers/test_verl_policy_loss.py runs them against verl's own code."""

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
    importlib.util.find_spec("verl") is None,
    reason="verl is not installed here (make peers-test runs it)",
)
def test_registration_into_real_verl():
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    register_into_verl()
    assert get_policy_loss_fn("prl_dapo").__name__ == "prl_dapo"


def split_like_fsdp(old, new, adv, mask, dp, micro):
    """Rows → dp ranks → micro-batches, with verl's global_batch_info for each piece."""
    info = {
        "dp_size": dp,
        "batch_num_tokens": mask.sum(),
        "global_batch_size": (mask.sum(-1) > 0).sum(),
        "loss_scale_factor": None,
    }
    rows = torch.arange(old.shape[0]).chunk(dp * micro)
    return [(old[r], new[r], adv[r], mask[r], info) for r in rows]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("dp", "micro"), [(1, 1), (2, 3), (4, 2)])
def test_micro_batch_losses_add_up_to_the_global_batch_loss(name, dp, micro):
    """FSDP: each rank back-propagates Σ over its micro-batches; gradients are averaged over
    ranks. That total must equal our loss on the whole batch at once, for any split."""
    registry, register = verl_like_registry()
    register_into_verl(register)
    g = torch.Generator().manual_seed(3)
    B, T = 24, 6
    old = -torch.rand(B, T, generator=g)
    new = old + 0.3 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, 1, generator=g).expand(B, T).contiguous()
    mask = (torch.rand(B, T, generator=g) > 0.3).float()
    mask[:, 0] = 1
    cfg = {"clip_ratio": 0.2, "clip_ratio_high": 0.28}
    whole, _ = registry[f"prl_{name}"](old, new, adv, mask, "token-mean", cfg)
    total = 0.0
    for o, n, a, m, info in split_like_fsdp(old, new, adv, mask, dp, micro):
        part, _ = registry[f"prl_{name}"](
            o, n, a, m, "token-mean", {**cfg, "global_batch_info": info}
        )
        total = total + part
    assert torch.allclose(total / dp, whole, atol=1e-6)


def test_dapo_under_verl_divides_by_the_global_token_count():
    registry, register = verl_like_registry()
    register_into_verl(register)
    old, new, adv, mask = batch(2, B=4, T=5)
    new = new.detach()
    info = {"dp_size": 2, "batch_num_tokens": torch.tensor(40.0), "global_batch_size": 8}
    loss, _ = registry["prl_dapo"](
        old, new, adv, mask, "token-mean", {"clip_ratio": 10.0, "global_batch_info": info}
    )
    # with a clip range this wide the surrogate is −w·A per token
    expected = (-(new - old).exp() * adv * mask).sum() / 40.0 * 2
    assert torch.allclose(loss, expected)


def test_global_reduce_needs_counts_when_data_parallel():
    from trainer.verl_plugin import global_reduce

    with pytest.raises(ValueError, match="batch_num_tokens"):
        global_reduce(torch.ones(2, 2), torch.ones(2, 2), "token-mean", dp_size=2)
    with pytest.raises(ValueError, match="unknown loss_agg_mode"):
        global_reduce(torch.ones(2, 2), torch.ones(2, 2), "mean")
