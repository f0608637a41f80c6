"""Every ``deva_*`` preset must train — the aggregation properties (a)–(c).

(a) a perfect task answer aggregates to ≥ 0.5 with alignment at its floor ``c`` and to ≥ 0.9
    with alignment at ``V = 0.5``;
(b) at a typical point (format 1, task components at 0.9 / 0.6 of their range, alignment at
    its floor) no component's marginal effect on the aggregate per unit of its own range
    exceeds 10× another's;
(c) the aggregate rises strictly with each component over its whole attainable range.

Everything goes through the real pipeline (``compiled`` + ``aggregate_values``); marginals are
forward finite differences (the floor is a kink of r_v: it can only rise from there).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from services.embedding import hypervolume
from services.reward.scoring.base import presets
from services.reward.scoring.pipeline import aggregate_values
from services.reward.scoring.spec import CompiledSpec, compiled

DEVA = sorted(n for n in presets.names() if n.startswith("deva_"))


def _ranges(c: CompiledSpec) -> dict[str, tuple[float, float]]:
    return {comp.name: comp.value_range(p) for comp, p in c.components}


def _agg(c: CompiledSpec, rows: list[dict[str, float]]) -> np.ndarray:
    values = np.array([[row[n] for n in c.names] for row in rows], dtype=np.float64)
    rewards, errors = aggregate_values(c, values, np.ones_like(values, dtype=bool))
    assert errors == [None] * len(rows)
    return rewards


def _floor(c: CompiledSpec) -> float:
    comp, p = next((comp, p) for comp, p in c.components if comp.name == "alignment")
    return comp.value_range(p)[0]


def _perfect(c: CompiledSpec) -> dict[str, float]:
    return {n: hi for n, (_lo, hi) in _ranges(c).items()}


def test_every_deva_preset_is_covered() -> None:
    assert DEVA == ["deva_classification", "deva_detection", "deva_grounding"]
    for name in DEVA:
        assert "alignment" in compiled(name).names


@pytest.mark.parametrize("name", DEVA)
def test_a_perfect_answer_is_not_pinned_by_alignment(name: str) -> None:
    c = compiled(name)
    p = next(p for comp, p in c.components if comp.name == "alignment")
    assert (p.a, p.b, p.c) == (1.0, 0.0, 2.0)  # the DEVA defaults are kept
    at_floor = _perfect(c) | {"alignment": _floor(c)}
    at_half = _perfect(c) | {"alignment": float(hypervolume.reward(0.5, p.hypervolume()))}
    assert at_half["alignment"] == pytest.approx(4.0)  # (1/0.5)² above the floor 2
    floor_h, half_h, best_h = _agg(c, [at_floor, at_half, _perfect(c)])
    assert floor_h >= 0.5
    assert half_h >= 0.9
    assert floor_h < half_h < best_h == pytest.approx(1.0)
    # hand computation: n unit-weight components at 1 and alignment (w = ¼) at r̂ = ½
    n = len(c.names) - 1
    assert floor_h == pytest.approx((n + 0.25) / (n + 0.25 / 0.5))


def _typical_points(c: CompiledSpec) -> list[dict[str, float]]:
    rng = _ranges(c)
    task = [n for n in c.names if n not in ("format", "alignment")]
    points = []
    for fracs in itertools.product((0.9, 0.6), repeat=len(task)):
        row = {"format": rng["format"][1], "alignment": _floor(c)}
        for n, f in zip(task, fracs, strict=True):
            lo, hi = rng[n]
            row[n] = lo + f * (hi - lo)
        points.append(row)
    return points


@pytest.mark.parametrize("name", DEVA)
def test_b_no_component_dominates_the_slope(name: str) -> None:
    c = compiled(name)
    rng = _ranges(c)
    for point in _typical_points(c):
        slopes = {}
        for n in c.names:
            lo, hi = rng[n]
            h = 1e-6 * (hi - lo)
            up = dict(point)
            if up[n] + h > hi:  # format sits at its maximum: step down instead
                up[n] -= h
                base, moved = _agg(c, [up, point])
            else:
                up[n] += h
                base, moved = _agg(c, [point, up])
            slopes[n] = (moved - base) / 1e-6  # per unit of the component's own range
        assert min(slopes.values()) > 0
        ratio = max(slopes.values()) / min(slopes.values())
        assert ratio <= 10.0, (point, slopes)


@pytest.mark.parametrize("name", DEVA)
def test_c_aggregate_rises_strictly_with_each_component(name: str) -> None:
    c = compiled(name)
    rng = _ranges(c)
    axes = [np.linspace(*rng[n], 6) for n in c.names]
    grid = list(itertools.product(*axes))
    values = _agg(c, [dict(zip(c.names, g, strict=True)) for g in grid])
    cube = values.reshape([len(a) for a in axes])
    for k in range(len(c.names)):
        assert (np.diff(cube, axis=k) > 0).all(), c.names[k]
