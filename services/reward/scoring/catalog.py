"""What ``GET /v1/rewards`` lists and what ``POST /v1/aggregate`` computes (pure)."""

from __future__ import annotations

import numpy as np

from schemas.reward import (
    AggregateRequest,
    AggregateResponse,
    AggregatorInfo,
    ComponentInfo,
    PresetInfo,
    RewardsCatalog,
)
from services.reward.scoring.base import advantages, aggregators, components, presets
from services.reward.scoring.pipeline import aggregate_values
from services.reward.scoring.spec import SpecError, compiled


def catalog() -> RewardsCatalog:
    """Every component (kind, needs, range at default params, description, params schema),
    aggregator, advantage estimator and preset (with its resolved spec)."""
    comps = []
    for name, c in components.items():
        lo, hi = c.value_range(c.params())  # the values it takes, not its scale bounds
        comps.append(
            ComponentInfo(
                name=name,
                kind=c.kind,
                needs=c.needs,
                range=(lo, hi),
                description=c.description,
                params=c.params.model_json_schema(),
            )
        )
    return RewardsCatalog(
        components=comps,
        aggregators=[
            AggregatorInfo(name=n, description=a.description, params=a.params.model_json_schema())
            for n, a in aggregators.items()
        ],
        advantages=[
            AggregatorInfo(name=n, description=e.description, params=e.params.model_json_schema())
            for n, e in advantages.items()
        ],
        presets=[
            PresetInfo(
                name=n, reproduces=p.reproduces, deviations=p.deviations, spec=compiled(n).spec
            )
            for n, p in presets.items()
        ],
    )


def aggregate_rows(req: AggregateRequest) -> AggregateResponse:
    """Aggregate given component values with the spec's aggregator and component ranges."""
    c = compiled(req.reward)
    names = c.names
    index = {n: j for j, n in enumerate(names)}
    values = np.zeros((len(req.values), len(names)))
    present = np.zeros(values.shape, dtype=bool)
    for i, row in enumerate(req.values):
        for name, v in row.items():
            j = index.get(name)
            if j is None:
                raise SpecError(
                    f"values[{i}].{name}: not a component of this reward (its components: "
                    f"{', '.join(names)})"
                )
            values[i, j] = v
            present[i, j] = True
    rewards, errors = aggregate_values(c, values, present)
    return AggregateResponse(rewards=rewards.tolist(), errors=errors, reward=c.spec)
