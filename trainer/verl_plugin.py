"""Our policy losses inside verl (volcengine/verl ≥ 0.9), for users who scale out on Ray.

:func:`register_into_verl` adds each GRPO-family loss of :mod:`trainer.objectives` to verl's
policy-loss registry under ``prl_<name>`` (``prl_grpo``, ``prl_bnpo``, ``prl_dr_grpo``,
``prl_dapo``, ``prl_gspo``, and ``prl_pgpo_*`` variants that read PGPO token weights). Select
one with ``actor_rollout_ref.actor.policy_loss.loss_mode=prl_dapo``. Registration must happen
in every worker process; importing :mod:`trainer.verl_register` does it, and verl imports that
module itself, on every worker, through the ``verl.plugins`` entry point this package
declares (``VERL_USE_EXTERNAL_PLUGINS`` unset or naming ``perception_rl``), or through
``VERL_USE_EXTERNAL_MODULES=trainer.verl_register``.

The registration contract, as verl 0.9.1's ``verl/trainer/ppo/core_algos.py`` defines it:

* ``register_policy_loss(name)`` stores ``fn`` in ``POLICY_LOSS_REGISTRY[name]``; its one
  caller, ``verl/workers/utils/losses.py::ppo_loss``, resolves it with
  ``get_policy_loss_fn(loss_mode)``;
* ``fn(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config,
  rollout_is_weights) -> (pg_loss, metrics: dict)``; tensors ``(B, T)``, ``response_mask``
  bool, advantages already broadcast per token;
* the actor config supplies ``clip_ratio``, ``clip_ratio_low``, ``clip_ratio_high`` and, set
  by ``ppo_loss`` before each call, ``global_batch_info = {dp_size, batch_num_tokens,
  global_batch_size, loss_scale_factor}``.

**Normalisation.** verl's FSDP engine back-propagates every micro-batch's loss as it is (no
division by the number of micro-batches) and averages gradients over data-parallel ranks, so a
loss must be normalised by the *global* token or sequence count, times ``dp_size`` — what
verl's ``agg_loss(..., **global_batch_info)`` does. A per-micro-batch mean instead is m× too
large (m = micro-batches per rank) next to verl's KL/entropy terms and gradient clipping.
:func:`global_reduce` reproduces ``agg_loss`` for every ``loss_agg_mode``; each of our losses
fixes the mode its paper prescribes (:data:`VERL_MODES`, whatever ``loss_agg_mode`` says):

    prl_grpo, prl_gspo   seq-mean-token-mean       mean over sequences of per-sequence means
    prl_dapo, prl_bnpo   token-mean                Σ ℓ / (tokens of the global batch)  — DAPO
    prl_dr_grpo          seq-mean-token-sum-norm   Σ ℓ / (global sequences · L), L =
                                                   ``actor.loss_scale_factor`` or the padded
                                                   response length (Dr.GRPO's L_max)

Under verl, ``prl_bnpo`` is therefore the same as ``prl_dapo`` (a micro-batch token mean is
exactly the scaling bug above). With an empty ``global_batch_info`` (a direct call) the counts
are those of the tensors given, as in ``agg_loss``.

What does *not* fit verl's signature and stays in our TRL trainer: DEVA's diversity loss and
global entropy regulariser need per-token EOS log-probs, entropies and reference log-probs from
the actor's forward pass, which verl does not hand to a policy loss. PGPO fits: verl's advantages
are per token, so weights ``w`` (B, T) from :func:`trainer.pgpo.pgpo_token_weights` can ride in
the batch; the ``prl_pgpo_*`` losses multiply ``advantages`` by ``config.policy_loss.pgpo_weights``
when a trainer hook has put them there (ones otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from torch import Tensor

from trainer.objectives.policy import (
    PolicyParams,
    clip_metrics,
    clipped_surrogate,
    log_importance_weights,
)
from trainer.objectives.registry import policy_losses

#: Our losses offered to verl: every registered spec with a ``verl_mode`` (GMPO is verl's own
#: ``geo_mean``; CPPO prunes before the forward, which verl's loss signature cannot).
NAMES: tuple[str, ...] = tuple(n for n, spec in policy_losses.items() if spec.verl_mode)

AggMode = Literal[
    "token-mean",
    "token-sum",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
]

#: The verl ``loss_agg_mode`` each of our losses normalises with (see the module docstring).
VERL_MODES: dict[str, AggMode] = {
    n: policy_losses.get(n).verl_mode  # type: ignore[misc]
    for n in NAMES
}
#: Importance-ratio level of each loss (GSPO: one ratio per sequence).
LEVELS: dict[str, Literal["token", "sequence"]] = {n: policy_losses.get(n).level for n in NAMES}


def _get(config: Any, key: str, default: Any = None) -> Any:
    if config is None:
        return default
    value = config.get(key, default) if hasattr(config, "get") else getattr(config, key, default)
    return default if value is None else value


def params_from_verl(config: Any, response_mask: Tensor) -> PolicyParams:
    """Clip range from verl's actor config (``clip_ratio_low/high`` fall back to ``clip_ratio``)."""
    eps = float(_get(config, "clip_ratio", 0.2))
    return PolicyParams(
        epsilon_low=float(_get(config, "clip_ratio_low", eps)),
        epsilon_high=float(_get(config, "clip_ratio_high", eps)),
        max_completion_length=int(response_mask.shape[-1]),
    )


def global_reduce(
    per_token: Tensor,
    mask: Tensor,
    mode: AggMode,
    *,
    dp_size: int = 1,
    batch_num_tokens: Any = None,
    global_batch_size: Any = None,
    loss_scale_factor: Any = None,
) -> Tensor:
    """Reduce a micro-batch's ``(B, T)`` loss as verl 0.9.1's ``agg_loss`` does.

    With N = ``batch_num_tokens`` (valid tokens of the global batch), S =
    ``global_batch_size`` (non-empty sequences of the global batch), d = ``dp_size``, m the
    mask and ℓ the per-token loss:

        token-mean               d · Σ m ℓ / N
        token-sum                d · Σ m ℓ
        seq-mean-token-sum       d · Σ_i (Σ_t m ℓ) / S
        seq-mean-token-mean      d · Σ_i (Σ_t m ℓ / Σ_t m) / S
        seq-mean-token-sum-norm  d · Σ_i (Σ_t m ℓ) / S / L,  L = ``loss_scale_factor`` or T

    Missing N or S default to this micro-batch's own counts (an error when d > 1, as in verl).
    Summed over the micro-batches of every rank and averaged over ranks (what FSDP's
    back-propagation and gradient all-reduce do), each gives the global-batch reduction.
    """
    m = mask.to(per_token.dtype)
    if mode in ("token-mean", "token-sum"):
        total = (per_token * m).sum()
        if mode == "token-sum":
            return total * dp_size
        if batch_num_tokens is None:
            if dp_size > 1:
                raise ValueError("token-mean with dp_size > 1 needs batch_num_tokens")
            batch_num_tokens = m.sum()
        return total / batch_num_tokens * dp_size
    if mode not in ("seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"):
        raise ValueError(f"unknown loss_agg_mode {mode!r}")
    counts = m.sum(-1)
    seq = (per_token * m).sum(-1)
    if mode == "seq-mean-token-mean":
        seq = seq / (counts + 1e-8)
    present = (counts > 0).to(per_token.dtype)
    if global_batch_size is None:
        if dp_size > 1:
            raise ValueError(f"{mode} with dp_size > 1 needs global_batch_size")
        global_batch_size = present.sum()
    loss = (seq * present).sum() / global_batch_size * dp_size
    if mode == "seq-mean-token-sum-norm":
        loss = loss / (loss_scale_factor if loss_scale_factor is not None else mask.shape[-1])
    return loss


def batch_info(config: Any) -> dict[str, Any]:
    """``config.global_batch_info`` as keyword arguments of :func:`global_reduce`."""
    info = _get(config, "global_batch_info", None) or {}
    keys = ("dp_size", "batch_num_tokens", "global_batch_size", "loss_scale_factor")
    out = {k: info.get(k) for k in keys if info.get(k) is not None}
    if "dp_size" in out:
        out["dp_size"] = int(out["dp_size"])
    return out


def verl_policy_loss(
    name: str, *, pgpo: bool = False
) -> Callable[..., tuple[Tensor, dict[str, Any]]]:
    """Our loss ``name`` in verl's policy-loss signature, normalised as :data:`VERL_MODES`.

    Per token it is our clipped surrogate (:func:`trainer.objectives.policy.clipped_surrogate`
    on the ratio level of ``name``), times ``rollout_is_weights`` when verl passes them; the
    reduction is :func:`global_reduce` with ``config.global_batch_info``.
    """
    policy_losses.get(name)  # an unknown name fails here, with "did you mean"
    if name not in VERL_MODES:
        raise ValueError(f"policy loss {name!r} is not offered to verl; use one of {list(NAMES)}")
    mode, level = VERL_MODES[name], LEVELS[name]

    def fn(
        old_log_prob: Tensor,
        log_prob: Tensor,
        advantages: Tensor,
        response_mask: Tensor,
        loss_agg_mode: str = "token-mean",
        config: Any = None,
        rollout_is_weights: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Any]]:
        mask = response_mask.to(log_prob.dtype)
        if pgpo:
            weights = _get(_get(config, "policy_loss", None), "pgpo_weights", None)
            if weights is not None:
                advantages = advantages * weights
        params = params_from_verl(config, response_mask)
        log_w = log_importance_weights(log_prob, old_log_prob, mask, level)
        per_token, coef_1, adv = clipped_surrogate(log_w, advantages, params)
        if rollout_is_weights is not None:
            per_token = per_token * rollout_is_weights
        loss = global_reduce(per_token, mask, mode, **batch_info(config))
        metrics = {"policy_loss": float(loss.detach()), **clip_metrics(coef_1, adv, mask, params)}
        return loss, {f"actor/prl_{k}": v for k, v in metrics.items()}

    fn.__name__ = f"prl_{'pgpo_' if pgpo else ''}{name}"
    return fn


def register_into_verl(register: Callable[[str], Callable] | None = None) -> list[str]:
    """Register every ``prl_*`` loss; ``register`` defaults to verl's ``register_policy_loss``.

    Idempotent (a name registered again is replaced by the same function).
    """
    if register is None:
        from verl.trainer.ppo.core_algos import register_policy_loss as register
    names = []
    for name in NAMES:
        for pgpo in (False, True):
            fn = verl_policy_loss(name, pgpo=pgpo)
            register(fn.__name__)(fn)
            names.append(fn.__name__)
    return names
