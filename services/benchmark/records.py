"""Plain data passed between the runner, the scorers and the metrics.

An :class:`EvalRecord` is one scored prediction as stored per sample; a :class:`MetricValue`
is one aggregate number with its uncertainty. Both are frozen dataclasses (no pydantic: the
metric code is pure numpy and cheap to construct in bulk).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class PredBox:
    """One predicted box in original-image pixels ``[x1, y1, x2, y2]``.

    ``score`` is the model's confidence when it gave one (Visual-RFT ``Confidence``), else
    ``None`` (metrics then use a constant score and keep emission order as the tie-break).
    """

    box: tuple[float, float, float, float]
    label: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class EvalRecord:
    """One sample's prediction and score.

    * ``solution``: the task solution as a plain dict (``{"boxes", "labels"?}`` in original
      pixels or ``{"label", "synonyms"?}``).
    * ``boxes``: the completion's boxes parsed through the task frame, in original pixels;
      ``None`` when the answer did not parse (a miss for every box metric).
    * ``components`` / ``reward`` / ``error``: what the reward service returned.
    * ``meta``: task metadata (``image_id``, ``image_size``, ``category``, ``iscrowd``, ...).
    """

    id: str
    completion: str
    solution: dict[str, Any]
    boxes: tuple[PredBox, ...] | None = None
    components: dict[str, float] = field(default_factory=dict)
    reward: float = 0.0
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricValue:
    """An aggregate metric with its bootstrap stderr and percentile confidence interval.

    ``reward_spec`` / ``reward_spec_hash``: for a mean-reward metric, the name and hash of the
    reward spec it averages (:mod:`services.benchmark.reward_key`); None for other metrics.
    """

    name: str
    value: float
    higher_is_better: bool = True
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    reward_spec: str | None = None
    reward_spec_hash: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
