"""The range a reward spec's aggregate can attain, and what format alone earns.

Every registered aggregator is non-decreasing in each component (non-negative weights;
harmonic, geometric, sum, mean, weighted, min), so the aggregate's extremes lie at the corners
of the box of component values: all components at the bottom of their attainable range
(``Component.value_range``) gives the minimum, all at the top the maximum. "Format alone" is
a completion that is well formed and nothing else: ``format`` at its top, every other
component at its bottom. Curriculum thresholds are checked against these three numbers
(trainer/config.py): a threshold below ``format_alone`` advances on format alone, one at or
above ``hi`` never fires.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.reward.scoring.pipeline import aggregate_values
from services.reward.scoring.spec import CompiledSpec


@dataclass(frozen=True)
class AggregateRange:
    """``[lo, hi]`` of the aggregate, and its value for format alone (None: no ``format``)."""

    lo: float
    hi: float
    format_alone: float | None

    def describe(self) -> str:
        alone = "" if self.format_alone is None else f", format alone gives {self.format_alone:g}"
        return f"attainable range [{self.lo:g}, {self.hi:g}]{alone}"


def aggregate_range(c: CompiledSpec) -> AggregateRange:
    """Evaluate the aggregator at the corners (module docstring); shapes ``(3, K)``."""
    ranges = np.array([comp.value_range(p) for comp, p in c.components], dtype=np.float64)
    low, high = ranges[:, 0], ranges[:, 1]
    alone = np.where(np.array(c.names) == "format", high, low)
    values = np.stack([low, high, alone])
    rewards, _errors = aggregate_values(c, values, np.ones_like(values, dtype=bool))
    return AggregateRange(
        lo=float(rewards[0]),
        hi=float(rewards[1]),
        format_alone=float(rewards[2]) if "format" in c.names else None,
    )
