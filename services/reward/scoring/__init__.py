"""The reward scoring library: pure functions and registries, no web imports.

Public API (imported by the service, the trainer, the benchmark runner and clients):

* ``resolve_reward(ref) -> RewardSpec``: a preset name or spec, validated, defaults filled in
  (``SpecError`` with a "did you mean" for unknown names, the field path for bad params);
* ``score_samples(samples, spec) -> list[SampleResult]``: sync, for specs without batch
  components; ``ascore_samples(samples, spec, context=None)``: any spec;
* ``ascore_groups(req, context=None) -> GroupsResponse``: GRPO groups with advantages;
* registries ``components``, ``aggregators``, ``advantages``, ``presets``.

Optional component modules (``alignment``) are imported when present.
"""

from __future__ import annotations

import importlib
import importlib.util

from services.reward.scoring import advantages as _advantages
from services.reward.scoring import aggregate
from services.reward.scoring import base as _base
from services.reward.scoring import components as _components
from services.reward.scoring import learned as _learned
from services.reward.scoring import peers as _peers
from services.reward.scoring.base import (
    Component,
    Prepared,
    ScoringContext,
    aggregators,
    batch_component,
    components,
    sample_component,
)
from services.reward.scoring.pipeline import (
    aggregate_values,
    ascore_groups,
    ascore_prepared,
    ascore_samples,
    score_samples,
)
from services.reward.scoring.spec import CompiledSpec, SpecError, compiled, resolve_reward

OPTIONAL_MODULES = ("alignment",)
for _name in OPTIONAL_MODULES:
    if importlib.util.find_spec(f"{__name__}.{_name}") is not None:
        importlib.import_module(f"{__name__}.{_name}")

importlib.import_module(f"{__name__}.presets")  # after the optional components

# Importing a submodule binds its name on this package; the registries must win over the
# modules ``advantages`` and ``presets`` that share their names.
advantages = _base.advantages
presets = _base.presets

del _advantages, _base, _components, _learned, _peers, aggregate

__all__ = [
    "CompiledSpec",
    "Component",
    "Prepared",
    "ScoringContext",
    "SpecError",
    "advantages",
    "aggregate_values",
    "aggregators",
    "ascore_groups",
    "ascore_prepared",
    "ascore_samples",
    "batch_component",
    "compiled",
    "components",
    "presets",
    "resolve_reward",
    "sample_component",
    "score_samples",
]
