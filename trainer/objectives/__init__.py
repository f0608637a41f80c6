"""Pure torch loss terms (registries): GRPO-family, GMPO and CPPO policy losses; DEVA's and
PAPO's regularisers; GRPO-CARE's reward bonus."""

from trainer.objectives.registry import policy_losses, regularizers, reward_bonuses

__all__ = ["policy_losses", "regularizers", "reward_bonuses"]
