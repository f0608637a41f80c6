"""Registries of loss terms: policy losses and additive regularisers.

Every term is a pure torch function over plain tensors (logps, EOS logps, entropies, masks,
advantages) returning ``(loss, metrics)``; nothing here knows about TRL, so the same terms can
be plugged into other trainers' policy-loss registries (e.g. verl's ``register_policy_loss``).

The policy-loss registry is the single source of truth for policy-loss names: the run
config's ``loss_type`` is validated against it, the TRL ``GRPOConfig`` settings of a run come
from its :class:`PolicyLossSpec` (``trl_loss_type`` / ``importance_sampling_level`` /
``grpo_defaults``), and :mod:`trainer.verl_plugin` registers exactly the specs that declare a
``verl_mode``. Adding a policy loss is one decorated function (:func:`register_policy_loss`).
This module itself imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from services.common.registry import Registry

Metrics = dict[str, float]
#: How a per-token loss ℓ (B, T) is reduced over the mask (trainer.objectives.policy).
Reduction = Literal["seq_mean", "token_mean", "fixed_length", "global_tokens", "sequence"]
Level = Literal["token", "sequence"]


@dataclass(frozen=True)
class PolicyLossSpec:
    """A registered policy loss: the pure function and how trainers select and normalise it.

    ``fn(inputs: PolicyInputs, params: PolicyParams) -> (scalar loss, metrics)``; calling the
    spec calls ``fn``.

    * ``reduction``: the reduction of the surrogate (``global_tokens`` means the loss is
      already normalised by the generation batch's token count, so the trainer does not
      divide it by gradient-accumulation steps).
    * ``level``: importance-ratio level (``sequence`` for GSPO), also used for TRL's
      bias-corrected KL.
    * ``trl_loss_type`` / ``importance_sampling_level``: the ``trl.GRPOConfig`` settings the
      run is built with; ``trl_exact`` says whether TRL's own loss for those settings is this
      loss (the trainer is checked against it), otherwise TRL's loss is never used.
    * ``grpo_defaults``: ``GRPOConfig`` fields this loss sets unless the run config does
      (GMPO: a log-space clip range ε = 0.4).
    * ``verl_mode``: the verl ``loss_agg_mode`` it normalises with, or None when it is not
      offered as a ``prl_*`` verl policy loss.
    * ``prunes``: CPPO-style pruning of completions before the policy forward.
    * ``kl_bias_correction``: whether TRL's ``use_bias_correction_kl`` (KL_t · ρ_t) applies
      to the β·KL penalty (TRL's GMPO trainer uses the plain k3 KL).
    """

    name: str
    fn: Callable[[Any, Any], tuple[Any, Metrics]]
    summary: str
    reduction: Reduction
    level: Level = "token"
    trl_loss_type: str = "grpo"
    importance_sampling_level: Level = "token"
    trl_exact: bool = False
    grpo_defaults: Mapping[str, Any] = field(default_factory=dict)
    verl_mode: str | None = None
    prunes: bool = False
    kl_bias_correction: bool = True

    def __call__(self, inputs: Any, params: Any) -> tuple[Any, Metrics]:
        return self.fn(inputs, params)


policy_losses: Registry[PolicyLossSpec] = Registry(
    "policy loss",
    builtins=("trainer.objectives.policy", "trainer.objectives.gmpo", "trainer.objectives.cppo"),
)
#: Additive terms (DEVA diversity, global entropy, PAPO perception); each entry's signature is
#: in its docstring.
regularizers: Registry[Callable[..., tuple[Any, Metrics]]] = Registry(
    "regulariser",
    builtins=(
        "trainer.objectives.diversity",
        "trainer.objectives.entropy",
        "trainer.objectives.papo",
    ),
)
#: Per-completion reward bonuses computed inside the trainer (GRPO-CARE's consistency bonus).
reward_bonuses: Registry[Callable[..., tuple[Any, Metrics]]] = Registry(
    "reward bonus", builtins=("trainer.objectives.care",)
)


def register_policy_loss(
    name: str, *, summary: str, reduction: Reduction, **spec: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``fn`` as policy loss ``name`` (see :class:`PolicyLossSpec`)."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        policy_losses.register(name)(
            PolicyLossSpec(name=name, fn=fn, summary=summary, reduction=reduction, **spec)
        )
        return fn

    return add


#: Names of the built-in policy losses, readable without torch (run-config validation stays
#: torch-free); tests/trainer/objectives/test_policy.py holds it equal to the loaded registry.
BUILTIN_POLICY_LOSSES = ("bnpo", "cppo", "dapo", "dr_grpo", "gmpo", "grpo", "gspo")


def check_policy_loss_name(name: str) -> None:
    """Raise ``UnknownNameError`` (with "did you mean") unless ``name`` is a policy loss.

    Built-in names are checked without importing torch; any other name loads the registry
    (a plug-in registered elsewhere may supply it)."""
    if name in BUILTIN_POLICY_LOSSES:
        return
    policy_losses.get(name)


def policy_loss_names() -> list[str]:
    """Names of every registered policy loss (the built-ins are loaded on first read)."""
    return policy_losses.names()


def policy_loss_spec(name: str) -> PolicyLossSpec:
    """The spec of ``name``; ``UnknownNameError`` (a ``KeyError``) with "did you mean"."""
    return policy_losses.get(name)
