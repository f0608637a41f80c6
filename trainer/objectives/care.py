"""GRPO-CARE: consistency-aware reward enhancement (Chen et al. 2025, arXiv 2506.16141).

GRPO rewards only the final answer, so a policy can learn answers its own reasoning does not
support. CARE adds, on top of the base reward a_i, a bonus for completions whose answer is
*likely given their reasoning* under a slowly updated reference model, judged relative to
the group:

    c_i = min( exp( mean_{t ∈ answer(o_i)} log π_ref(o_t | I, q, o_<t) ), c_max )
          (the reference's geometric-mean probability of the answer tokens, given the image,
           question and the completion's own reasoning before them)
    S_g = { i ∈ g : a_i > τ_acc  and  a_i ≥ mean_{j∈g} a_j }          (accurate in group g)
    b_i = λ · a_i · 1[ i ∈ S_g  and  c_i ≥ mean_{j ∈ S_g} c_j − δ ]
    r_i = a_i + b_i        → GRPO advantages as usual; no KL penalty (β = 0)

The reference is an exponential moving average of the policy, θ_ref ← α·θ_ref + (1 − α)·θ,
updated once per generation batch before c is computed (the trainer, ``care.ema_decay``).

Choices (the paper leaves them to its code or open): a_i is the run's reward (the reward
service's aggregate) rather than a separate accuracy reward; the group is the G completions
of a prompt (the reference code averages over a device's batch, one prompt per device);
"answer tokens" are the completion tokens strictly inside the last ``<answer>…</answer>``
(a completion without one gets c = 0, hence no bonus); defaults λ = 0.5, δ = 0.01,
τ_acc = 0.1, c_max = 0.95 (None: uncapped), α = 0.995.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer.objectives.registry import Metrics, reward_bonuses


def answer_confidence(ref_logps: Tensor, answer_mask: Tensor, cap: float | None = None) -> Tensor:
    """c_i = min(exp(mean over answer tokens of ref log-probs), cap); 0 without answer tokens.

    ``ref_logps``, ``answer_mask``: (B, T). Returns (B,), no gradient.
    """
    m = answer_mask.to(ref_logps.dtype)
    n = m.sum(-1)
    c = torch.exp((ref_logps.detach() * m).sum(-1) / n.clamp(min=1.0))
    c = torch.where(n > 0, c, torch.zeros_like(c))
    return c if cap is None else c.clamp(max=cap)


@reward_bonuses.register("care_consistency")
def care_consistency_bonus(
    accuracy: Tensor,
    confidence: Tensor,
    group_size: int,
    *,
    bonus: float = 0.5,
    margin: float = 0.01,
    accuracy_threshold: float = 0.1,
) -> tuple[Tensor, Metrics]:
    """b: (B,) consistency bonus (module docstring); groups are consecutive rows of G.

    ``accuracy`` a (B,), ``confidence`` c (B,), B a multiple of ``group_size``.
    """
    if accuracy.shape != confidence.shape or accuracy.numel() % group_size:
        raise ValueError(
            f"accuracy {tuple(accuracy.shape)} and confidence {tuple(confidence.shape)} must be "
            f"(B,) with B a multiple of group_size={group_size}"
        )
    a = accuracy.view(-1, group_size).float()
    c = confidence.view(-1, group_size).float()
    accurate = (a > accuracy_threshold) & (a >= a.mean(dim=1, keepdim=True))
    n_acc = accurate.sum(dim=1, keepdim=True)
    c_mean = (c * accurate).sum(dim=1, keepdim=True) / n_acc.clamp(min=1)
    confident = c >= c_mean - margin
    got = accurate & confident
    b = torch.where(got, bonus * a, torch.zeros_like(a)).flatten().to(accuracy.dtype)
    return b, {
        "care/bonus_mean": float(b.mean()),
        "care/bonus_share": float(got.float().mean()),
        "care/accurate_share": float(accurate.float().mean()),
        "care/confidence_mean": float(confidence.float().mean()),
    }
