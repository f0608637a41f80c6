"""Our policy losses inside verl (volcengine/verl), for users who scale out on Ray.

``register_into_verl()`` adds each GRPO-family loss of :mod:`trainer.objectives` to verl's
policy-loss registry under ``prl_<name>`` (``prl_grpo``, ``prl_bnpo``, ``prl_dr_grpo``,
``prl_dapo``, ``prl_gspo``, and ``prl_pgpo_*`` variants that read PGPO token weights). Select one
with ``actor_rollout_ref.actor.policy_loss.loss_mode=prl_dapo``; ``register_into_verl()`` must
have run in every actor worker process before the actor is built (call it from your own entry
module, or from a ``sitecustomize`` on the workers' ``PYTHONPATH``).

The registration contract, as verl's ``verl/trainer/ppo/core_algos.py`` defines it:

* ``register_policy_loss(name)`` is a decorator storing ``fn`` in ``POLICY_LOSS_REGISTRY[name]``;
  verl's actor looks it up with ``get_policy_loss_fn(loss_mode)``;
* ``fn(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean",
  config=None, rollout_is_weights=None) -> (pg_loss, pg_metrics: dict)``; all tensors
  ``(B, T)`` (advantages already broadcast per token by verl's estimators);
* the actor config supplies ``clip_ratio``, ``clip_ratio_low``, ``clip_ratio_high`` (and
  verl's own ``loss_agg_mode``, which our named losses fix themselves and so ignore).

What does *not* fit verl's signature and stays in our TRL trainer: DEVA's diversity loss and
global entropy regulariser need per-token EOS log-probs, entropies and reference log-probs from
the actor's forward pass, which verl does not hand to a policy loss. PGPO fits: verl's advantages
are per token, so weights ``w`` (B, T) from :func:`trainer.pgpo.pgpo_token_weights` can ride in
the batch; the ``prl_pgpo_*`` losses multiply ``advantages`` by ``config.policy_loss.pgpo_weights``
when a trainer hook has put them there (ones otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from trainer.objectives.policy import PolicyInputs, PolicyParams
from trainer.objectives.registry import policy_losses

NAMES = ("grpo", "bnpo", "dr_grpo", "dapo", "gspo")


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


def verl_policy_loss(
    name: str, *, pgpo: bool = False
) -> Callable[..., tuple[Tensor, dict[str, Any]]]:
    """Wrap our registered policy loss ``name`` in verl's policy-loss signature."""
    loss_fn = policy_losses.get(name)

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
        inputs = PolicyInputs(
            logps=log_prob,
            old_logps=old_log_prob,
            advantages=advantages,
            mask=mask,
            is_ratio=rollout_is_weights,
        )
        loss, metrics = loss_fn(inputs, params_from_verl(config, response_mask))
        return loss, {f"actor/prl_{k}": v for k, v in metrics.items()}

    fn.__name__ = f"prl_{'pgpo_' if pgpo else ''}{name}"
    return fn


def register_into_verl(register: Callable[[str], Callable] | None = None) -> list[str]:
    """Register every ``prl_*`` loss; ``register`` defaults to verl's ``register_policy_loss``."""
    if register is None:
        from verl.trainer.ppo.core_algos import register_policy_loss as register
    names = []
    for name in NAMES:
        for pgpo in (False, True):
            fn = verl_policy_loss(name, pgpo=pgpo)
            register(fn.__name__)(fn)
            names.append(fn.__name__)
    return names
