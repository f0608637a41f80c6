"""DEVA's GFlowNet diversity loss: modified detailed balance with a reference-model reward.

Generation of a completion o = (o_1, …, o_T) is a walk through prefix states s_t = o_≤t
(s_0 = the prompt). Every prefix may terminate (⊤ = EOS), and the state graph is a tree, so the
backward policy is P_B = 1. Modified detailed balance (Deleu et al. 2022, "Bayesian structure
learning with generative flow networks", eq. 6) for the transition s_{t−1} → s_t reads

    R(s_t) · P_F(⊤ | s_{t−1}) = R(s_{t−1}) · P_F(o_t | s_{t−1}) · P_F(⊤ | s_t).

DEVA (CVPR 2026) defines the per-step reward through the frozen reference model,

    log r_t = log r(o_t | o_<t) = log π_ref(o_t | o_<t) + exp((1/γ) · log π_ref(⊤ | o_<t)),

so that log R(s_t) − log R(s_{t−1}) = log r_t. The residual of transition t is

    δ_t = log r_t + log π_θ(⊤ | o_<t) − log π_θ(o_t | o_<t) − log π_θ(⊤ | o_≤t),

and the loss, per completion i over its valid transitions V_i, then over completions, is

    L_div = (1/|I|) Σ_{i∈I} (1/|V_i|) Σ_{t∈V_i} δ_{i,t}²,   I = {i : |V_i| > 0}.

A transition t is valid when tokens t and t+1 are both completion tokens (m_t = m_{t+1} = 1):
log π_θ(⊤ | o_≤t) is read at position t+1, where the model predicts the token after o_t.
The last token of a completion therefore closes no transition: if it is EOS it *is* the
terminal action (not a state-to-state transition), and if the completion was truncated the
termination probability after it was never computed. Reference terms carry no gradient.

Tensor layout (all (B, T), column t = completion token t):
    logps[t]       = log π_θ(o_t | o_<t)         eos_logps[t]     = log π_θ(⊤ | o_<t)
    ref_logps[t]   = log π_ref(o_t | o_<t)       ref_eos_logps[t] = log π_ref(⊤ | o_<t)
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer.objectives.registry import Metrics, regularizers


def reference_log_reward(ref_logps: Tensor, ref_eos_logps: Tensor, gamma: float) -> Tensor:
    """log r_t = log π_ref(o_t|o_<t) + exp(log π_ref(⊤|o_<t) / γ), shape (B, T), no gradient."""
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    return (ref_logps + torch.exp(ref_eos_logps / gamma)).detach()


def transition_mask(mask: Tensor) -> Tensor:
    """(B, T) float: 1 where tokens t and t+1 are both completion tokens (last column 0)."""
    m = mask.float()
    out = torch.zeros_like(m)
    out[:, :-1] = m[:, :-1] * m[:, 1:]
    return out


def mdb_residuals(
    logps: Tensor, eos_logps: Tensor, ref_logps: Tensor, ref_eos_logps: Tensor, gamma: float
) -> Tensor:
    """δ_t = log r_t + log π_θ(⊤|o_<t) − log π_θ(o_t|o_<t) − log π_θ(⊤|o_≤t); (B, T), last column 0."""
    log_r = reference_log_reward(ref_logps, ref_eos_logps, gamma)
    delta = torch.zeros_like(logps)
    delta[:, :-1] = log_r[:, :-1] + eos_logps[:, :-1] - logps[:, :-1] - eos_logps[:, 1:]
    return delta


@regularizers.register("deva_diversity")
def diversity_loss(
    logps: Tensor,
    eos_logps: Tensor,
    ref_logps: Tensor,
    ref_eos_logps: Tensor,
    mask: Tensor,
    gamma: float = 1.0,
) -> tuple[Tensor, Metrics]:
    """L_div (module docstring): mean over completions of the mean squared MDB residual.

    Returns a scalar (0 with a graph when no completion has a valid transition) and metrics
    ``div/loss``, ``div/residual_abs_mean``.
    """
    tm = transition_mask(mask)
    delta = mdb_residuals(logps, eos_logps, ref_logps, ref_eos_logps, gamma) * tm
    count = tm.sum(-1)
    has = count > 0
    per_seq = (delta**2).sum(-1) / count.clamp(min=1.0)
    if not bool(has.any()):
        loss = (logps * 0.0).sum() + (eos_logps * 0.0).sum()
        return loss, {"div/loss": 0.0, "div/residual_abs_mean": 0.0}
    loss = per_seq[has].mean()
    abs_mean = float(delta.detach().abs().sum() / tm.sum())
    return loss, {"div/loss": float(loss.detach()), "div/residual_abs_mean": abs_mean}
