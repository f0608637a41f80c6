"""PAPO: perception-aware policy optimization (Wang et al. 2025, arXiv 2507.06448).

PAPO adds to the GRPO/DAPO objective an *implicit perception loss*: the policy's completion
must become less likely when the image is masked, i.e. the KL between the policy with the
image and with a masked image is **maximised**,

    KL_prcp = D_KL( π_θ(o | q, I) ‖ π_θ(o | q, I_mask) ),

estimated per completion token with the k3 estimator on the sampled tokens (r_t =
π_θ(o_t | q, I_mask, o_<t) / π_θ(o_t | q, I, o_<t), k3_t = r_t − log r_t − 1 ≥ 0). Maximising
it without bound is easy to game (the masked-image policy is pushed towards a flat, high-
entropy distribution, "KL hacking"); PAPO's safeguard is the *double entropy loss*, which
penalises the entropy of both views:

    L_papo = −γ · KL̄_prcp + η_1 · H̄[π_θ(· | q, I)] + η_2 · H̄[π_θ(· | q, I_mask)],

each bar a token mean over the completion mask, added to the policy loss. Gradients flow
through both views. Defaults (ours, inside the paper's reported range): γ = 0.01,
η_1 = η_2 = 0.03.

The masked view (trainer): ``view="masked"`` (the paper's) zeroes a random ``mask_ratio``
(paper: 0.6) of the image's patch tokens in the processor's normalised pixel space (0 = the
dataset-mean colour), one LLM token (merge_size² vision patches) at a time, drawn afresh per
micro-batch with a seeded generator; ``view="no_image"`` drops the image entirely, reusing
PGPO's text-only prompt (trainer/pgpo.py: ``drop_vision_tokens`` + ``build_text_only_inputs``,
the same forward as PGPO's visual dependency but with gradient).
"""

from __future__ import annotations

from torch import Tensor

from trainer.objectives.entropy import masked_seq_mean
from trainer.objectives.policy import k3_kl
from trainer.objectives.registry import Metrics, regularizers


def masked_token_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Σ m x / Σ m over the whole batch (0 for an empty mask); scalar."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


@regularizers.register("papo_perception")
def papo_perception_loss(
    logps: Tensor,
    masked_logps: Tensor,
    entropies: Tensor,
    masked_entropies: Tensor,
    mask: Tensor,
    *,
    gamma: float = 0.01,
    eta_policy: float = 0.03,
    eta_masked: float = 0.03,
) -> tuple[Tensor, Metrics]:
    """L_papo = −γ·KL̄_prcp + η_1·H̄ + η_2·H̄_mask (module docstring); all inputs (B, T).

    ``logps`` / ``entropies``: the policy with the image; ``masked_*``: with the masked
    image (or none). Returns the scalar to *add* to the policy loss, and metrics.
    """
    kl = k3_kl(logps, masked_logps)  # exp(lm − l) − (lm − l) − 1 per token
    kl_mean = masked_token_mean(kl, mask)
    h = masked_token_mean(entropies, mask)
    h_mask = masked_token_mean(masked_entropies, mask)
    loss = -gamma * kl_mean + eta_policy * h + eta_masked * h_mask
    return loss, {
        "papo/loss": float(loss.detach()),
        "papo/kl_prcp": float(kl_mean.detach()),
        "papo/kl_prcp_seq_max": float(masked_seq_mean(kl.detach(), mask).max()),
        "papo/entropy": float(h.detach()),
        "papo/masked_entropy": float(h_mask.detach()),
    }
