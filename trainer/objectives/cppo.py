"""CPPO: completion pruning policy optimization (Lin et al. 2025, arXiv 2503.22342).

A completion's contribution to the GRPO gradient scales with |A_i|; completions with
advantages near zero cost a full forward and backward and teach little. CPPO keeps, in each
group of G completions, the k with the largest |A_i| and runs the policy forward on those
only:

    K_g = top-k_{i ∈ g} |A_i|,   k = max(1, ⌈keep_ratio · G⌉),
    L   = GRPO loss over the kept completions i ∈ ∪_g K_g  (sequence mean, then batch mean),

with the advantages computed on the *whole* group before pruning (the paper's order). The
compute saved is the share of completion tokens that never reach the policy forward:
``cppo/token_saving = 1 − Σ_{kept} |o_i| / Σ_all |o_i|`` (and ``cppo/kept_fraction``).

Choices where the paper is silent or that we do not take over: ties in |A| keep the earlier
completion (stable order); k uses the ceiling so a ratio never keeps zero; the paper's
dynamic completion allocation (refilling the freed batch slots with completions of new
prompts) is not implemented — the saving shows up as a smaller policy batch instead. The
trainer prunes right after scoring (before the PGPO and reference forwards, which therefore
shrink too); called with ``params.group_size`` set, :func:`cppo_loss` prunes itself, which
gives the same value as pruning first (tested).
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer.objectives.policy import PolicyInputs, PolicyParams, clipped_policy_loss
from trainer.objectives.registry import Metrics, register_policy_loss
from trainer.plugin_configs import cppo_keep_count


def cppo_keep(advantages: Tensor, group_size: int, keep_ratio: float) -> Tensor:
    """Indices (sorted, LongTensor) of the completions CPPO keeps.

    ``advantages``: (B,) sequence advantages, B a multiple of ``group_size``, groups being
    consecutive rows (TRL's layout). In each group the k largest |A| are kept, ties by order.
    """
    if advantages.dim() != 1 or advantages.numel() % group_size:
        raise ValueError(
            f"advantages must be (B,) with B a multiple of group_size={group_size}, "
            f"got {tuple(advantages.shape)}"
        )
    k = cppo_keep_count(group_size, keep_ratio)
    grouped = advantages.detach().abs().view(-1, group_size)
    order = torch.sort(grouped, dim=1, descending=True, stable=True).indices[:, :k]
    base = torch.arange(grouped.shape[0], device=advantages.device).unsqueeze(1) * group_size
    return torch.sort((order + base).flatten()).values


def cppo_saving(mask: Tensor, keep: Tensor) -> Metrics:
    """``cppo/kept_fraction`` and ``cppo/token_saving`` of keeping rows ``keep`` of mask (B, T)."""
    tokens = mask.sum(-1).float()
    total = float(tokens.sum())
    kept = float(tokens[keep].sum())
    return {
        "cppo/kept_fraction": keep.numel() / max(mask.shape[0], 1),
        "cppo/token_saving": 1.0 - kept / total if total else 0.0,
    }


@register_policy_loss(
    "cppo",
    summary="CPPO (Lin et al. 2025): GRPO on the top-|A| completions per group (pruned pre-forward)",
    reduction="seq_mean",
    prunes=True,
)
def cppo_loss(inputs: PolicyInputs, params: PolicyParams) -> tuple[Tensor, Metrics]:
    """GRPO over the kept completions (module docstring). With ``params.group_size`` None the
    rows are taken as already pruned (the trainer's path) and this is the GRPO loss."""
    metrics: Metrics = {}
    if params.group_size is not None:
        adv = inputs.advantages
        seq_adv = adv if adv.dim() == 1 else (adv * inputs.mask).sum(-1) / inputs.mask.sum(-1)
        keep = cppo_keep(seq_adv, params.group_size, params.keep_ratio)
        metrics = cppo_saving(inputs.mask, keep)
        inputs = PolicyInputs(
            *(None if x is None else x[keep] for x in (
                inputs.logps, inputs.old_logps, inputs.advantages, inputs.mask,
            )),
            is_ratio=None if inputs.is_ratio is None else inputs.is_ratio[keep],
            penalty=None if inputs.penalty is None else inputs.penalty[keep],
        )  # fmt: skip
    loss, m = clipped_policy_loss(inputs, params, level="token", reduction="seq_mean")
    return loss, {**m, **metrics}
