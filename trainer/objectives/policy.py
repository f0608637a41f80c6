"""GRPO-family clipped policy losses: grpo, bnpo, dr_grpo, dapo, gspo.

All share the PPO clipped surrogate on an importance ratio w = π_θ / π_old (Schulman et al.
2017), with GRPO's group-normalised advantages (Shao et al. 2024, DeepSeekMath):

    ℓ_t = −min(w_t·A, clip(w_t, 1 − ε_low, 1 + ε_high)·A)  (+ β·KL_t when a KL penalty is set)

and differ in the ratio level and in how the per-token loss ℓ (B, T) is reduced over the mask m:

    grpo     (1/B) Σ_i [Σ_t m ℓ / Σ_t m]                         sequence mean, then batch mean
    bnpo     Σ m ℓ / Σ m                                          token mean over the local batch
    dr_grpo  Σ m ℓ / (B · L_max)                                 Dr.GRPO (Liu et al. 2025)
    dapo     Σ m ℓ / N_tokens                                     DAPO (Yu et al. 2025); N_tokens
             is the token count of the whole generation batch (``token_normalizer``)
    gspo     like grpo but with the sequence-level ratio          GSPO (Zheng et al. 2025)
             w_i = exp((1/|o_i|) Σ_t m (log π_θ − log π_old))

These reproduce TRL 1.16's ``GRPOTrainer._compute_loss`` for ``loss_type`` grpo, bnpo,
dr_grpo, dapo and (``loss_type="grpo"``, ``importance_sampling_level="sequence"``) exactly;
the division by gradient-accumulation steps is left to the caller (except for ``dapo``, whose
normaliser already spans the generation batch: its spec's reduction is ``global_tokens``).

The five are one surrogate, :func:`clipped_policy_loss`, with the ratio level and the
reduction as parameters; each registered name fixes the pair (and the TRL / verl settings it
corresponds to) in its :class:`~trainer.objectives.registry.PolicyLossSpec`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from trainer.objectives.registry import Level, Metrics, register_policy_loss

Aggregation = Literal["seq_mean", "token_mean", "fixed_length", "global_tokens"]


@dataclass(frozen=True)
class PolicyInputs:
    """Per-token tensors of one micro-batch.

    logps, old_logps: (B, T) log π(o_t | o_<t) under θ (with grad) and the sampling policy.
    advantages: (B,) or (B, T). mask: (B, T) {0, 1} completion mask.
    is_ratio: optional (B, T) or (B, 1) importance-sampling correction (vLLM TIS/MIS).
    penalty: optional (B, T) per-token term added before reduction (β·KL in TRL).
    """

    logps: Tensor
    old_logps: Tensor
    advantages: Tensor
    mask: Tensor
    is_ratio: Tensor | None = None
    penalty: Tensor | None = None


@dataclass(frozen=True)
class PolicyParams:
    """Clip range ε_low/ε_high, optional two-sided clip δ (INTELLECT-2), normalisers.

    GMPO reads ε_low/ε_high in log space. CPPO: ``group_size`` G and ``keep_ratio`` select
    the completions inside the loss (None: the rows were already pruned before the forward).
    """

    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    delta: float | None = None
    max_completion_length: int | None = None
    token_normalizer: float | Tensor | None = None
    group_size: int | None = None
    keep_ratio: float = 1.0


def k3_kl(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(π_θ ‖ π_ref): exp(r − l) − (r − l) − 1, shapes (B, T)."""
    diff = ref_logps - logps
    return torch.exp(diff) - diff - 1


def log_importance_weights(
    logps: Tensor, old_logps: Tensor, mask: Tensor, level: Literal["token", "sequence"]
) -> Tensor:
    """log w: (B, T) per token, or (B, 1) = masked mean of the log-ratio for the sequence level."""
    log_ratio = logps - old_logps
    if level == "token":
        return log_ratio
    seq = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    return seq.unsqueeze(-1)


def clipped_surrogate(
    log_w: Tensor, advantages: Tensor, params: PolicyParams
) -> tuple[Tensor, Tensor, Tensor]:
    """ℓ = −min(w·A, clip(w, 1−ε_low, 1+ε_high)·A), w optionally capped at δ; returns (ℓ, w, A)."""
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    coef_1 = torch.exp(log_w)
    coef_2 = torch.clamp(coef_1, 1 - params.epsilon_low, 1 + params.epsilon_high)
    if params.delta is not None:
        coef_1 = torch.clamp(coef_1, max=params.delta)
    return -torch.min(coef_1 * adv, coef_2 * adv), coef_1, adv


def reduce_tokens(
    per_token: Tensor, mask: Tensor, how: Aggregation, params: PolicyParams
) -> Tensor:
    """Reduce a (B, T) per-token loss over the mask (see the module docstring for formulas)."""
    masked = per_token * mask
    if how == "seq_mean":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if how == "token_mean":
        return masked.sum() / mask.sum().clamp(min=1.0)
    if how == "fixed_length":
        if params.max_completion_length is None:
            raise ValueError("dr_grpo needs max_completion_length")
        return masked.sum() / (per_token.size(0) * params.max_completion_length)
    norm = params.token_normalizer
    norm_t = mask.sum() if norm is None else torch.as_tensor(norm, dtype=masked.dtype)
    return masked.sum() / norm_t.clamp(min=1.0)


def clip_metrics(coef_1: Tensor, adv: Tensor, mask: Tensor, params: PolicyParams) -> Metrics:
    """Fractions of (masked) tokens whose ratio sits outside the clip range on the active side."""
    low = ((coef_1 < 1 - params.epsilon_low) & (adv < 0)).float()
    high = ((coef_1 > 1 + params.epsilon_high) & (adv > 0)).float()

    def frac(x: Tensor) -> float:
        if x.shape[1] == 1:
            return float(x.mean())
        return float((x * mask).sum() / mask.sum().clamp(min=1.0))

    return {
        "clip_ratio/low_mean": frac(low),
        "clip_ratio/high_mean": frac(high),
        "clip_ratio/region_mean": frac(torch.maximum(low, high)),
    }


def clipped_policy_loss(
    inputs: PolicyInputs,
    params: PolicyParams,
    *,
    level: Level = "token",
    reduction: Aggregation = "seq_mean",
) -> tuple[Tensor, Metrics]:
    """The GRPO-family loss: clipped surrogate on the ``level`` ratio, × IS ratio, + penalty,
    reduced over the mask by ``reduction`` (module docstring). Returns (scalar, metrics)."""
    log_w = log_importance_weights(inputs.logps, inputs.old_logps, inputs.mask, level)
    per_token, coef_1, adv = clipped_surrogate(log_w, inputs.advantages, params)
    if inputs.is_ratio is not None:
        per_token = per_token * inputs.is_ratio
    if inputs.penalty is not None:
        per_token = per_token + inputs.penalty
    loss = reduce_tokens(per_token, inputs.mask, reduction, params)
    metrics = {
        "policy_loss": float(loss.detach()),
        **clip_metrics(coef_1, adv, inputs.mask, params),
    }
    return loss, metrics


#: (name, ratio level, reduction, TRL loss_type, verl loss_agg_mode, summary)
_FAMILY: tuple[tuple[str, Level, Aggregation, str, str, str], ...] = (
    ("grpo", "token", "seq_mean", "grpo", "seq-mean-token-mean",
     "GRPO (Shao et al. 2024): token ratio; per-sequence token mean, then batch mean"),
    ("bnpo", "token", "token_mean", "bnpo", "token-mean",
     "BNPO: token ratio; token mean over the local batch"),
    ("dr_grpo", "token", "fixed_length", "dr_grpo", "seq-mean-token-sum-norm",
     "Dr.GRPO (Liu et al. 2025): Σ m ℓ / (B · max_completion_length)"),
    ("dapo", "token", "global_tokens", "dapo", "token-mean",
     "DAPO (Yu et al. 2025): clip-higher, Σ m ℓ / tokens of the generation batch"),
    ("gspo", "sequence", "seq_mean", "grpo", "seq-mean-token-mean",
     "GSPO (Zheng et al. 2025): sequence ratio exp(mean_t log π_θ/π_old)"),
)  # fmt: skip

for _name, _level, _reduction, _trl, _verl, _summary in _FAMILY:
    _fn = functools.partial(clipped_policy_loss, level=_level, reduction=_reduction)
    register_policy_loss(
        _name,
        summary=_summary,
        reduction=_reduction,
        level=_level,
        trl_loss_type=_trl,
        importance_sampling_level=_level,
        trl_exact=True,
        verl_mode=_verl,
    )(_fn)
