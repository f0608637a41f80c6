"""Resolving a reward reference (preset name or spec) and compiling it for scoring."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from schemas.bounds import interval
from schemas.reward import AggregateRef, BoxSolution, ComponentRef, RewardRef, RewardSpec
from services.common.registry import UnknownNameError
from services.reward.scoring.base import (
    Aggregator,
    Component,
    Estimator,
    advantages,
    aggregators,
    components,
    presets,
)


class SpecError(ValueError):
    """A reward spec, preset name or parameter that cannot be used (HTTP 422)."""


@dataclass(frozen=True)
class CompiledSpec:
    """A validated spec ready to score: components with typed params, ``weights, lo, hi: (K,)``."""

    spec: RewardSpec
    components: tuple[tuple[Component, Any], ...]
    weights: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    aggregator: Aggregator
    aggregate_params: Any

    @property
    def names(self) -> list[str]:
        return [c.name for c, _ in self.components]

    @property
    def parse_options(self) -> frozenset[str]:
        """Answer dialect options of the spec: the union of its components' ``parse``."""
        return frozenset().union(*(c.parse for c, _ in self.components))

    @property
    def has_batch(self) -> bool:
        return any(c.kind == "batch" for c, _ in self.components)


_BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _allowed_range(model: type[BaseModel], name: str) -> str | None:
    """``[lo, hi]``-style text of a field's ``gt/ge/lt/le`` constraints (None without any)."""
    field = model.model_fields.get(name)
    if field is None:
        return None
    lo, hi, lo_open, hi_open = float("-inf"), float("inf"), False, False
    for m in field.metadata:
        if getattr(m, "gt", None) is not None:
            lo, lo_open = float(m.gt), True
        if getattr(m, "ge", None) is not None:
            lo, lo_open = float(m.ge), False
        if getattr(m, "lt", None) is not None:
            hi, hi_open = float(m.lt), True
        if getattr(m, "le", None) is not None:
            hi, hi_open = float(m.le), False
    return f"must be in {interval(lo, hi, lo_open or lo == -math.inf, hi_open or hi == math.inf)}"


def _params(model: type[BaseModel], given: dict[str, Any], where: str) -> BaseModel:
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"])
            known = ", ".join(model.model_fields) or "none"
            hint = f" (known parameters: {known})" if err["type"] == "extra_forbidden" else ""
            if err["type"] in _BOUND_ERRORS and err["loc"]:
                allowed = _allowed_range(model, str(err["loc"][0]))
                hint = f" ({allowed})" if allowed else ""
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"{where}{'.' + loc if loc else ''}: {msg}{hint}")
        raise SpecError("; ".join(parts)) from None


def _lookup(registry: Any, name: str, where: str) -> Any:
    try:
        return registry.get(name)
    except UnknownNameError as exc:
        raise SpecError(f"{where}: {exc}") from None


def compile_spec(spec: RewardSpec) -> CompiledSpec:
    """Validate names, params and ranges of ``spec``; raise :class:`SpecError` with the path."""
    comps = []
    for i, ref in enumerate(spec.components):
        where = f"reward.components[{i}]"
        comp: Component = _lookup(components, ref.name, f"{where}.name")
        params = _params(comp.params, ref.params, f"{where}.params")
        try:
            lo, hi = comp.bounds(params)
        except (OverflowError, ZeroDivisionError) as exc:
            raise SpecError(f"{where}.params: the component's range overflows ({exc})") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise SpecError(f"{where}.params: the component's range [{lo}, {hi}] is not finite")
        if not hi > lo:
            raise SpecError(f"{where}: component range [{lo}, {hi}] is empty")
        comps.append((comp, params, lo, hi, ref.weight))
    names = [c[0].name for c in comps]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"reward.components: {', '.join(dupes)} listed more than once")
    if not any(c[4] > 0 for c in comps):
        raise SpecError("reward.components: every weight is 0; give at least one a weight > 0")
    agg: Aggregator = _lookup(aggregators, spec.aggregate.method, "reward.aggregate.method")
    agg_params = _params(agg.params, spec.aggregate.params, "reward.aggregate.params")
    if agg.check is not None:
        problem = agg.check(agg_params, names, [float(c[4]) for c in comps])
        if problem:
            raise SpecError(f"reward.aggregate: {problem}")
    return CompiledSpec(
        spec=spec,
        components=tuple((c[0], c[1]) for c in comps),
        weights=np.array([c[4] for c in comps], dtype=np.float64),
        lo=np.array([c[2] for c in comps], dtype=np.float64),
        hi=np.array([c[3] for c in comps], dtype=np.float64),
        aggregator=agg,
        aggregate_params=agg_params,
    )


_CACHE: OrderedDict[str, CompiledSpec] = OrderedDict()
_CACHE_SIZE = 256


def compiled(ref: RewardRef) -> CompiledSpec:
    """Resolve and compile ``ref`` (preset name or spec), memoised on its JSON form."""
    key = ref if isinstance(ref, str) else ref.model_dump_json()
    got = _CACHE.get(key)
    if got is not None:
        _CACHE.move_to_end(key)
        return got
    spec = _preset_spec(ref) if isinstance(ref, str) else ref
    got = _normalised(compile_spec(spec))
    _CACHE[key] = got
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return got


def _preset_spec(name: str) -> RewardSpec:
    return _lookup(presets, name, "reward").spec


def _normalised(c: CompiledSpec) -> CompiledSpec:
    """The same spec with every default parameter written out (what responses echo back)."""
    spec = RewardSpec(
        components=[
            ComponentRef(name=comp.name, weight=float(w), params=p.model_dump())
            for (comp, p), w in zip(c.components, c.weights, strict=True)
        ],
        aggregate=AggregateRef(method=c.aggregator.name, params=c.aggregate_params.model_dump()),
    )
    return CompiledSpec(spec, c.components, c.weights, c.lo, c.hi, c.aggregator, c.aggregate_params)


def spec_of(ref: RewardRef) -> RewardSpec:
    """A preset name → its spec (SpecError with a "did you mean" if unknown); a spec as is."""
    return _preset_spec(ref) if isinstance(ref, str) else ref


def component_ranges(ref: RewardRef) -> dict[str, tuple[float, float]]:
    """``name → (lo, hi)``: each component's declared scale under the spec's parameters
    (without compiling the aggregator, so a spec whose aggregator cannot load still scales)."""
    out = {}
    for i, c in enumerate(spec_of(ref).components):
        comp: Component = _lookup(components, c.name, f"reward.components[{i}].name")
        out[c.name] = comp.bounds(_params(comp.params, c.params, f"reward.components[{i}].params"))
    return out


def resolve_reward(ref: RewardRef) -> RewardSpec:
    """A preset name or spec → the validated spec with defaults filled in (SpecError if not)."""
    return compiled(ref).spec


def resolve_estimator(name: str, params: dict[str, Any]) -> tuple[Estimator, Any]:
    est: Estimator = _lookup(advantages, name, "advantage")
    return est, _params(est.params, params, "advantage_params")


def check_solutions(c: CompiledSpec, solutions: list[tuple[str, Any]]) -> None:
    """Every component's solution kind must match each item's solution (else SpecError).

    ``solutions``: (location, solution) pairs, e.g. ``("samples[3].solution", sol)``.
    """
    box_comps = [comp.name for comp, _ in c.components if comp.needs == "boxes"]
    label_comps = [comp.name for comp, _ in c.components if comp.needs == "label"]
    for where, sol in solutions:
        is_box = isinstance(sol, BoxSolution)
        if box_comps and not is_box:
            raise SpecError(
                f"{where}: component {box_comps[0]!r} needs a box solution "
                '({"boxes": [[x1, y1, x2, y2], ...]}), got a label solution'
            )
        if label_comps and is_box:
            raise SpecError(
                f"{where}: component {label_comps[0]!r} needs a label solution "
                '({"label": "..."}), got a box solution'
            )
