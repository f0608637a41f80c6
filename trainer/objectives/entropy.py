"""DEVA's global (sequence-level) entropy regulariser, replacing token-level KL.

For completion i with mask m (B, T) and per-token entropies H^θ (policy, with grad) and
H^ref (reference, no grad) of the next-token distributions,

    h_i^θ = Σ_t m_{i,t} H^θ_{i,t} / Σ_t m_{i,t},    h_i^ref likewise,
    L_reg = (1/|I|) Σ_{i∈I} (h_i^θ − h_i^ref)²,     I = {i : Σ_t m_{i,t} > 0}.

It keeps the policy's *average* uncertainty near the reference's without pinning each token's
distribution, as the token-level KL of GRPO does (DEVA, CVPR 2026).
"""

from __future__ import annotations

from torch import Tensor

from trainer.objectives.registry import Metrics, regularizers


def masked_seq_mean(x: Tensor, mask: Tensor) -> Tensor:
    """(B,) masked mean over the token axis; 0 for an empty row."""
    m = mask.float()
    return (x * m).sum(-1) / m.sum(-1).clamp(min=1.0)


@regularizers.register("deva_entropy")
def entropy_regularizer(
    entropies: Tensor, ref_entropies: Tensor, mask: Tensor
) -> tuple[Tensor, Metrics]:
    """L_reg = mean_i (mean_t H^θ − mean_t H^ref)²; shapes (B, T); scalar loss + metrics."""
    has = mask.float().sum(-1) > 0
    h_pol = masked_seq_mean(entropies, mask)
    h_ref = masked_seq_mean(ref_entropies.detach(), mask)
    gap = (h_pol - h_ref)[has]
    if gap.numel() == 0:
        return (entropies * 0.0).sum(), {"ent/loss": 0.0, "ent/gap_mean": 0.0}
    loss = (gap**2).mean()
    return loss, {
        "ent/loss": float(loss.detach()),
        "ent/gap_mean": float(gap.detach().mean()),
        "ent/policy_mean": float(h_pol[has].detach().mean()),
        "ent/ref_mean": float(h_ref[has].mean()),
    }
