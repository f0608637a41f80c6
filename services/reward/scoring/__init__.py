"""The reward scoring library: pure functions and registries, no web imports.

Public API (imported by the service, the trainer, the benchmark runner and clients):

* ``resolve_reward(ref) -> RewardSpec``: a preset name or spec, validated, defaults filled in
  (``SpecError`` with a "did you mean" for unknown names, the field path for bad params);
* ``score_samples(samples, spec) -> list[SampleResult]``: sync, for specs without batch
  components; ``ascore_samples(samples, spec, context=None)``: any spec;
* ``ascore_groups(req, context=None) -> GroupsResponse``: GRPO groups with advantages;
* registries ``components``, ``aggregators``, ``advantages``, ``presets`` (each imports the
  modules of its built-ins on first read; see ``base.py``).
"""

from __future__ import annotations

# The submodules ``advantages``, ``components`` and ``presets`` share their names with three
# registries: import them here, before the names are bound to the registries, so that a later
# lazy load of the built-ins (services.common.registry) finds them imported and cannot rebind
# the package attributes to the modules. Which registry holds what does not depend on this:
# every registry loads its own built-ins on first read.
from services.reward.scoring import advantages as _advantages_module  # noqa: F401
from services.reward.scoring import components as _components_module  # noqa: F401
from services.reward.scoring import presets as _presets_module  # noqa: F401
from services.reward.scoring.base import (
    Component,
    Prepared,
    ScoringContext,
    aggregators,
    batch_component,
    sample_component,
)
from services.reward.scoring.base import advantages as advantages
from services.reward.scoring.base import components as components
from services.reward.scoring.base import presets as presets
from services.reward.scoring.pipeline import (
    aggregate_values,
    ascore_groups,
    ascore_prepared,
    ascore_samples,
    score_samples,
)
from services.reward.scoring.spec import CompiledSpec, SpecError, compiled, resolve_reward

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
