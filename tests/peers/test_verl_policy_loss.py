"""Our policy losses inside verl 0.9.1's own code: its registry, ``get_policy_loss_fn`` and the
``ppo_loss`` its FSDP engine calls per micro-batch, with the global batch info that engine sets.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

verl = pytest.importorskip("verl", reason="verl is in .venv-peers only (make peers-test)")
pytestmark = pytest.mark.peers

import torch  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, get_policy_loss_fn  # noqa: E402
from verl.utils import tensordict_utils as tu  # noqa: E402
from verl.workers.config import FSDPActorConfig, PolicyLossConfig  # noqa: E402
from verl.workers.utils.losses import ppo_loss  # noqa: E402

from trainer.verl_plugin import NAMES, VERL_MODES  # noqa: E402

P = 3  # prompt tokens per sample


def registered_in_fresh_process(env: dict[str, str]) -> bool:
    code = (
        "import verl\nfrom verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY\n"
        "print('prl_dapo' in POLICY_LOSS_REGISTRY)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1] == "True"


def test_plain_import_verl_registers_through_the_entry_point():
    assert registered_in_fresh_process({})
    assert not registered_in_fresh_process({"VERL_USE_EXTERNAL_PLUGINS": "none"})
    assert registered_in_fresh_process(
        {"VERL_USE_EXTERNAL_PLUGINS": "none", "VERL_USE_EXTERNAL_MODULES": "trainer.verl_register"}
    )


def test_every_loss_resolves_through_get_policy_loss_fn():
    for name in NAMES:
        for prefix in ("prl_", "prl_pgpo_"):
            fn = get_policy_loss_fn(prefix + name)
            assert fn is POLICY_LOSS_REGISTRY[prefix + name] and fn.__name__ == prefix + name


def global_batch(seed: int, B: int, R: int):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, R, generator=g) - 0.1
    new = old + 0.4 * torch.randn(B, R, generator=g)  # ratios within e^±1.6 < clip_ratio_c = 3
    adv = torch.randn(B, 1, generator=g).expand(B, R).contiguous()
    lengths = torch.randint(1, R + 1, (B,), generator=g)
    mask = torch.arange(R)[None, :] < lengths[:, None]
    return old, new, adv, mask


def micro_batch(old, new, adv, mask, info) -> tuple[TensorDict, dict]:
    """What the FSDP engine hands ``ppo_loss``: a padded batch plus the model's flat log-probs
    over prompt + response tokens (left-shifted by one, as ``no_padding_2_padding`` reads them)."""
    B, R = old.shape
    attention = torch.cat([torch.ones(B, P, dtype=torch.long), mask.long()], dim=1)
    values = []
    for i in range(B):
        n = int(mask[i].sum())
        seq = torch.zeros(P + n)
        seq[P - 1 : P - 1 + n] = new[i, :n]
        values.append(seq)
    data = TensorDict(
        {
            "prompts": torch.ones(B, P, dtype=torch.long),
            "responses": torch.ones(B, R, dtype=torch.long),
            "attention_mask": attention,
            "response_mask": mask.long(),
            "old_log_probs": old,
            "advantages": adv,
        },
        batch_size=[B],
    )
    tu.assign_non_tensor(data, **info)
    return data, {"log_probs": torch.cat(values)}


def actor(loss_mode: str, agg: str) -> FSDPActorConfig:
    return FSDPActorConfig(
        strategy="fsdp",
        policy_loss=PolicyLossConfig(loss_mode=loss_mode),
        ppo_micro_batch_size_per_gpu=2,
        ppo_mini_batch_size=4,
        use_dynamic_bsz=False,
        rollout_n=1,
        loss_agg_mode=agg,
        clip_ratio=0.2,
        clip_ratio_low=0.2,
        clip_ratio_high=0.28,
    )


def fsdp_total(loss_mode: str, agg: str, dp: int, micro: int, B: int = 24) -> float:
    """Σ over every rank's micro-batches of ``ppo_loss`` / dp: the loss FSDP's backward and
    gradient all-reduce optimise, for one mini-batch split over ``dp`` ranks × ``micro``."""
    R = 7
    old, new, adv, mask = global_batch(0, B, R)
    info = {
        "dp_size": dp,
        "batch_num_tokens": int(mask.sum()),
        "global_batch_size": B,
    }
    total = 0.0
    for rows in torch.arange(B).chunk(dp * micro):
        data, out = micro_batch(old[rows], new[rows], adv[rows], mask[rows], info)
        loss, _ = ppo_loss(actor(loss_mode, agg), out, data)
        total += float(loss)
    return total / dp


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("dp", "micro"), [(1, 1), (2, 3), (4, 2)])
def test_our_loss_equals_verls_vanilla_with_the_same_aggregation(name, dp, micro):
    """Per token both are the PPO clipped surrogate (no dual clip is reached here), so with the
    aggregation mode our loss fixes, verl's own ``vanilla`` must give the same value — under
    data parallelism and several micro-batches, i.e. with verl's global batch info."""
    if name == "gspo":  # sequence-level ratio: verl's own "gspo" is the reference
        ours = fsdp_total("prl_gspo", "token-mean", dp, micro)
        theirs = fsdp_total("gspo", "seq-mean-token-mean", dp, micro)
    else:
        ours = fsdp_total(f"prl_{name}", "token-mean", dp, micro)
        theirs = fsdp_total("vanilla", VERL_MODES[name], dp, micro)
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-7)


def test_dapo_is_the_global_token_mean_whatever_the_split():
    """DAPO: Σ ℓ over all tokens of the mini-batch / its token count — the same for any split
    into ranks and micro-batches (a per-micro-batch mean would be m× larger)."""
    B, R = 24, 7
    old, new, adv, mask = global_batch(0, B, R)
    ratio = (new - old).exp()
    clipped = torch.clamp(ratio, 0.8, 1.28)
    per_token = -torch.min(ratio * adv, clipped * adv)
    expected = float((per_token * mask).sum() / mask.sum())
    for dp, micro in [(1, 1), (2, 3), (3, 2)]:
        assert fsdp_total("prl_dapo", "token-mean", dp, micro) == pytest.approx(expected, rel=1e-5)


def test_gmpo_equals_verls_geo_mean():
    """Our registered GMPO (no penalty, sequence advantages) is verl's own ``geo_mean``."""
    from trainer.objectives import policy_losses
    from trainer.objectives.policy import PolicyInputs, PolicyParams

    old, new, adv, mask = global_batch(5, 6, 7)
    new = new.requires_grad_()
    cfg = FSDPActorConfig(
        strategy="fsdp",
        policy_loss=PolicyLossConfig(loss_mode="geo_mean"),
        ppo_micro_batch_size_per_gpu=2,
        ppo_mini_batch_size=4,
        use_dynamic_bsz=False,
        rollout_n=1,
        clip_ratio=0.4,
        clip_ratio_low=0.4,
        clip_ratio_high=0.4,
    )
    theirs, _ = get_policy_loss_fn("geo_mean")(old, new, adv, mask.float(), "token-mean", cfg)
    (g_theirs,) = torch.autograd.grad(theirs, new)
    ours, _ = policy_losses.get("gmpo")(
        PolicyInputs(new, old, adv[:, 0], mask.float()),
        PolicyParams(epsilon_low=0.4, epsilon_high=0.4),
    )
    (g_ours,) = torch.autograd.grad(ours, new)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert torch.allclose(g_ours, g_theirs, atol=1e-6)
