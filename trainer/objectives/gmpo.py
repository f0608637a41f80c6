"""GMPO: geometric-mean policy optimization (Zhao et al. 2025, arXiv 2507.20673).

GRPO maximises the *arithmetic* mean over tokens of clipped ratio-weighted advantages; a
single outlier ratio then dominates a sequence's update. GMPO maximises their *geometric*
mean instead, with the clip applied per token in log space and a wider range:

    J_i = sgn(A_i) · Π_{t∈o_i} | min(ρ_t·A_i, clip(ρ_t, e^{−ε_low}, e^{ε_high})·A_i) |^{1/|o_i|}
        = A_i · exp( (1/|o_i|) Σ_t ℓ̃_t ),
    ℓ̃_t = min(log ρ_t, clip(log ρ_t, −ε_low, ε_high))   if A_i > 0
          max(log ρ_t, clip(log ρ_t, −ε_low, ε_high))   otherwise,
    ρ_t = π_θ(o_t | ·) / π_old(o_t | ·),
    L = (1/B) Σ_i −J_i          (+ β · the sequence mean of the per-token KL penalty)

The paper's default ε_low = ε_high = 0.4 (ratios in (e^{−0.4}, e^{0.4}) ≈ (0.67, 1.49)),
which the run config applies unless ``grpo.epsilon`` / ``grpo.epsilon_high`` are set.

Reproduces TRL 1.16's ``trl.experimental.gmpo.GMPOTrainer._compute_loss`` (tested on the same
batch) and, without a penalty, verl 0.9.1's ``geo_mean`` policy loss (tests/peers). Choices
where the paper is silent: token-level advantages (PGPO's A_i·w_t) enter the clip side per
token and the sequence advantage is their masked mean (verl's reading); vLLM importance-
sampling ratios are folded in as their geometric mean per sequence (verl's reading).
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer.objectives.policy import PolicyInputs, PolicyParams
from trainer.objectives.registry import Metrics, register_policy_loss


def gmpo_log_ratio(log_ratio: Tensor, adv: Tensor, params: PolicyParams) -> Tensor:
    """ℓ̃_t: the sign-aware log-space clip of ``log_ratio`` (B, T); ``adv`` (B, T) or (B, 1)."""
    clamped = torch.clamp(log_ratio, min=-params.epsilon_low, max=params.epsilon_high)
    return torch.where(
        adv > 0, torch.minimum(log_ratio, clamped), torch.maximum(log_ratio, clamped)
    )


@register_policy_loss(
    "gmpo",
    summary="GMPO (Zhao et al. 2025): geometric mean of token ratios, log-space clip e^±0.4",
    reduction="sequence",
    grpo_defaults={"epsilon": 0.4},
    kl_bias_correction=False,
)
def gmpo_loss(inputs: PolicyInputs, params: PolicyParams) -> tuple[Tensor, Metrics]:
    """L = mean_i −A_i · exp(mean_t ℓ̃_t) (module docstring); shapes (B, T); scalar + metrics."""
    mask = inputs.mask.to(inputs.logps.dtype)
    adv = inputs.advantages
    adv_t = adv.unsqueeze(1) if adv.dim() == 1 else adv
    count = mask.sum(-1).clamp(min=1.0)
    log_ratio = inputs.logps - inputs.old_logps
    clipped = gmpo_log_ratio(log_ratio, adv_t, params)
    ratio = torch.exp((clipped * mask).sum(-1) / count)  # (B,)
    seq_adv = adv if adv.dim() == 1 else (adv * mask).sum(-1) / count
    per_seq = -seq_adv * ratio
    if inputs.is_ratio is not None:
        log_is = torch.log(inputs.is_ratio.clamp(min=1e-10)).expand_as(mask)
        per_seq = per_seq * torch.exp((log_is * mask).sum(-1) / count)
    if inputs.penalty is not None:
        per_seq = per_seq + (inputs.penalty * mask).sum(-1) / count
    loss = per_seq.mean()
    low = ((log_ratio < -params.epsilon_low) & (adv_t < 0)).float()
    high = ((log_ratio > params.epsilon_high) & (adv_t > 0)).float()
    total = mask.sum().clamp(min=1.0)
    return loss, {
        "policy_loss": float(loss.detach()),
        "gmpo/seq_ratio_mean": float(ratio.detach().mean()),
        "clip_ratio/low_mean": float((low * mask).sum() / total),
        "clip_ratio/high_mean": float((high * mask).sum() / total),
        "clip_ratio/region_mean": float((torch.maximum(low, high) * mask).sum() / total),
    }
