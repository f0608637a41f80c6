"""Registries of loss terms: policy losses and additive regularisers.

Every term is a pure torch function over plain tensors (logps, EOS logps, entropies, masks,
advantages) returning ``(loss, metrics)``; nothing here knows about TRL, so the same terms can
be plugged into other trainers' policy-loss registries (e.g. verl's ``register_policy_loss``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from services.common.registry import Registry

Metrics = dict[str, float]


class PolicyLoss(Protocol):
    """``(inputs: PolicyInputs, params: PolicyParams) -> (scalar loss, metrics)``."""

    def __call__(self, inputs: Any, params: Any) -> tuple[Any, Metrics]: ...


policy_losses: Registry[PolicyLoss] = Registry(
    "policy loss", builtins=("trainer.objectives.policy",)
)
#: Additive terms (DEVA diversity, global entropy); each entry's signature is in its docstring.
regularizers: Registry[Callable[..., tuple[Any, Metrics]]] = Registry(
    "regulariser", builtins=("trainer.objectives.diversity", "trainer.objectives.entropy")
)
