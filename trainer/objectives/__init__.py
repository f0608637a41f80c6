"""Pure torch loss terms: GRPO-family policy losses and DEVA's regularisers (registries)."""

from trainer.objectives.registry import policy_losses, regularizers

__all__ = ["policy_losses", "regularizers"]
