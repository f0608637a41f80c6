"""DEVA's GFlowNet diversity loss: modified detailed balance with a reference-model reward.

Generation of a completion o = (o_1, …, o_T) is a walk through prefix states s_t = o_≤t
(s_0 = the prompt). Every prefix may terminate (⊤ = EOS), and the state graph is a tree, so the
backward policy is P_B = 1. Modified detailed balance (Deleu et al. 2022, "Bayesian structure
learning with generative flow networks", eq. 6) for the transition s_{t−1} → s_t reads

    R(s_t) · P_F(⊤ | s_{t−1}) = R(s_{t−1}) · P_F(o_t | s_{t−1}) · P_F(⊤ | s_t).

DEVA (CVPR 2026) defines a per-token reward through the frozen reference model,

    log r_t = log r(o_t | o_<t) = log π_ref(o_t | o_<t) + exp((1/γ) · log π_ref(⊤ | o_<t)),

and prints the loss as the sum over a completion's transitions of the squared log-ratio of
the two sides, with R(s_t) = r(o_t | o_<t) and the transitions those between completion
prefixes, s_t → s_{t+1} for t ≥ 1:

    L_paper = Σ_{t=1}^{T−1} ( log r_{t+1} − log r_t + log π_θ(⊤ | o_≤t)
                              − log π_θ(o_{t+1} | o_≤t) − log π_θ(⊤ | o_≤t+1) )².

Implemented equation (the defaults; each departure is a switch of ``diversity_loss`` and of
the run config's ``deva.diversity``):

    δ_t   = [log R(s_t) − log R(s_{t−1})] + log π_θ(⊤ | o_<t) − log π_θ(o_t | o_<t)
            − log π_θ(⊤ | o_≤t),                                       t ∈ V_i
    L_div = (1/|I|) Σ_{i∈I} ρ_i( δ_{i,t}² : t ∈ V_i ),   I = {i : |V_i| > 0}

1. **State reward, cumulative** (``state_reward="cumulative"``, kept): R(s_t) = Π_{k≤t} r_k,
   so ``log R(s_t) − log R(s_{t−1}) = log r_t``. In MDB, R(s) is the reward for *stopping* at
   s; the product makes that target π_ref(o_≤t) · Π_k exp(π_ref(⊤|o_<k)^{1/γ}), a sequence
   distribution tied to the reference model, which is what the loss is meant to match.
   Reading R(s_t) as the last token's r_t alone (``"last_token"``, the printed form:
   difference ``log r_t − log r_{t−1}``) makes the stopping target depend on one token only.
2. **Prompt → o_1 transition** (``prompt_transition=True``, kept): s_0 = the prompt is a
   state of the same tree and MDB holds on that edge too (R(s_0) = 1: the empty completion
   earns nothing, log R(s_0) = 0 in both state-reward modes). Without it, the first token's
   probability and π_θ(⊤ | prompt) are left out of the diversity term. ``False`` drops it
   (the printed sum starts at the first completion prefix).
3. **Reduction over transitions** ρ_i (``reduction``): ``"sum"`` is the paper's
   Σ_{t∈V_i} δ²; ``"mean"`` (the default) divides it by |V_i|. Under ``"sum"`` the term
   grows with the completion length, so the same λ_div weighs it up to |V_i| times as
   much as under ``"mean"`` (511 transitions at ``max_completion_length`` 512, 512 with
   the prompt transition): λ_div(sum) ≈ λ_div(mean) / |V| for completions of length ≈ |V|.
   ``"mean"`` keeps λ_div independent of length and on the scale of TRL's token-normalised
   policy losses (DAPO, BNPO), which is why it is the default; ``"sum"`` with a λ_div
   divided by the typical length reproduces the paper's weighting of long completions.
   Both average over completions (1/|I|).

Transition set V_i: t is valid when tokens t and t+1 are both completion tokens
(m_t = m_{t+1} = 1), minus t = 1 (the prompt transition) when ``prompt_transition=False``.
log π_θ(⊤ | o_≤t) is read at position t+1, where the model predicts the token after o_t.
The last token of a completion therefore closes no transition: if it is EOS it *is* the
terminal action (not a state-to-state transition), and if the completion was truncated the
termination probability after it was never computed. Reference terms carry no gradient.

Tensor layout (all (B, T), column t = completion token t, 0-based in code; column 0 holds
the prompt → o_1 transition):
    logps[t]       = log π_θ(o_t | o_<t)         eos_logps[t]     = log π_θ(⊤ | o_<t)
    ref_logps[t]   = log π_ref(o_t | o_<t)       ref_eos_logps[t] = log π_ref(⊤ | o_<t)
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from trainer.objectives.registry import Metrics, regularizers


def reference_log_reward(ref_logps: Tensor, ref_eos_logps: Tensor, gamma: float) -> Tensor:
    """log r_t = log π_ref(o_t|o_<t) + exp(log π_ref(⊤|o_<t) / γ), shape (B, T), no gradient."""
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    return (ref_logps + torch.exp(ref_eos_logps / gamma)).detach()


StateReward = Literal["cumulative", "last_token"]
Reduction = Literal["sum", "mean"]


def transition_mask(mask: Tensor, prompt_transition: bool = True) -> Tensor:
    """(B, T) float: 1 where tokens t and t+1 are both completion tokens (last column 0);
    column 0 (the prompt → o_1 transition) also 0 when ``prompt_transition`` is False."""
    m = mask.float()
    out = torch.zeros_like(m)
    out[:, :-1] = m[:, :-1] * m[:, 1:]
    if not prompt_transition:
        out[:, 0] = 0.0
    return out


def mdb_residuals(
    logps: Tensor,
    eos_logps: Tensor,
    ref_logps: Tensor,
    ref_eos_logps: Tensor,
    gamma: float,
    state_reward: StateReward = "cumulative",
) -> Tensor:
    """δ_t = Δ log R_t + log π_θ(⊤|o_<t) − log π_θ(o_t|o_<t) − log π_θ(⊤|o_≤t); (B, T), last
    column 0. ``Δ log R_t = log r_t`` (cumulative) or ``log r_t − log r_{t−1}`` with
    ``log r_0 = 0`` before the first token (last_token)."""
    log_r = reference_log_reward(ref_logps, ref_eos_logps, gamma)
    if state_reward == "last_token":
        step = log_r.clone()
        step[:, 1:] = log_r[:, 1:] - log_r[:, :-1]
    elif state_reward == "cumulative":
        step = log_r
    else:
        raise ValueError(f"state_reward must be 'cumulative' or 'last_token', got {state_reward!r}")
    delta = torch.zeros_like(logps)
    delta[:, :-1] = step[:, :-1] + eos_logps[:, :-1] - logps[:, :-1] - eos_logps[:, 1:]
    return delta


@regularizers.register("deva_diversity")
def diversity_loss(
    logps: Tensor,
    eos_logps: Tensor,
    ref_logps: Tensor,
    ref_eos_logps: Tensor,
    mask: Tensor,
    gamma: float = 1.0,
    *,
    reduction: Reduction = "mean",
    state_reward: StateReward = "cumulative",
    prompt_transition: bool = True,
) -> tuple[Tensor, Metrics]:
    """L_div (module docstring): mean over completions of ρ_i, the sum (``reduction="sum"``,
    the paper's) or mean (default) of the squared MDB residuals over its transitions.

    Returns a scalar (0 with a graph when no completion has a valid transition) and metrics
    ``div/loss``, ``div/residual_abs_mean``.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    tm = transition_mask(mask, prompt_transition)
    delta = mdb_residuals(logps, eos_logps, ref_logps, ref_eos_logps, gamma, state_reward) * tm
    count = tm.sum(-1)
    has = count > 0
    per_seq = (delta**2).sum(-1)
    if reduction == "mean":
        per_seq = per_seq / count.clamp(min=1.0)
    if not bool(has.any()):
        loss = (logps * 0.0).sum() + (eos_logps * 0.0).sum()
        return loss, {"div/loss": 0.0, "div/residual_abs_mean": 0.0}
    loss = per_seq[has].mean()
    abs_mean = float(delta.detach().abs().sum() / tm.sum())
    return loss, {"div/loss": float(loss.detach()), "div/residual_abs_mean": abs_mean}
