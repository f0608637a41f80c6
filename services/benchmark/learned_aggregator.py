"""Training data for the ``learned`` aggregator from stored runs, and one-call fitting helpers.

A stored run keeps, per sample, the raw component values its reward spec produced
(``Prediction.components``). Fitting works on values scaled to [0, 1] by each component's
declared range under *that run's* spec parameters, ``r̂ = clip((r − lo) / (hi − lo), 0, 1)``
(the scaling the aggregator sees at inference), for:

* **regression**: one row per stored sample that has every input and the target, the target
  being a per-sample component stored with the run (DiG's suite metric ``dig/f1`` is the mean
  of the per-sample ``f1``), scaled the same way;
* **preference pairs**: for every sample id stored in two or more of the runs, each pair of
  runs whose targets differ gives one pair, the higher target preferred (ties are skipped) —
  "which of two models' answers to the same item was better", fitted with Bradley–Terry.

:func:`fit_learned_spec` is the helper for scripts (the DEVA ablation): rows of (component
values, metric) in, a model file and a ready reward spec using it out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from schemas.reward import RewardRef, RewardSpec
from services.reward.fit import MIN_SAMPLES, FitConfig, FitResult, fit_preferences, fit_regression


def reward_spec_of(ref: RewardRef | Mapping[str, Any]) -> RewardSpec:
    """A preset name, a spec or its JSON form → the spec (``SpecError`` for an unknown name)."""
    from services.reward.scoring.spec import spec_of

    return spec_of(ref if isinstance(ref, str | RewardSpec) else RewardSpec.model_validate(ref))


def component_ranges(ref: RewardRef | Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """``name → (lo, hi)``: each component's declared scale under the spec's parameters."""
    from services.reward.scoring.spec import component_ranges as ranges

    return ranges(reward_spec_of(ref))


def _scaled(value: Any, lo: float, hi: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        return None
    return float(min(max((value - lo) / (hi - lo), 0.0), 1.0))


@dataclass
class Table:
    """Scaled rows ``x: (N, K)`` over ``inputs`` with ``target: (N,)``; ``keys`` (run key,
    sample id) per row; ``skipped``: stored rows lacking an input or the target."""

    inputs: list[str]
    x: np.ndarray
    target: np.ndarray
    keys: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0


def table_from_rows(
    rows: Iterable[tuple[Mapping[str, Any], Any]],
    inputs: Sequence[str],
    ranges: Mapping[str, tuple[float, float]],
    *,
    target_range: tuple[float, float] = (0.0, 1.0),
    keys: Sequence[tuple[str, str]] | None = None,
) -> Table:
    """(raw component values, raw target) rows → a scaled :class:`Table`."""
    xs, ts, kept, skipped = [], [], [], 0
    for i, (values, target) in enumerate(rows):
        row = [_scaled(values.get(n), *ranges[n]) for n in inputs]
        t = _scaled(target, *target_range)
        if t is None or any(v is None for v in row):
            skipped += 1
            continue
        xs.append(row)
        ts.append(t)
        if keys is not None:
            kept.append(keys[i])
    x = np.asarray(xs, dtype=np.float64).reshape(-1, len(inputs))
    return Table(list(inputs), x, np.asarray(ts, dtype=np.float64), kept, skipped)


# ---- the SQL store ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredRun:
    """What a fit needs of one stored run: identity, reward spec and per-sample values."""

    id: int
    key: str
    model: str
    suite: str
    version: str
    status: str
    reward: Any
    rows: list[tuple[str, dict[str, Any]]]  # (sample id, components)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "model": self.model,
            "suite": f"{self.suite}@{self.version}",
            "n_rows": len(self.rows),
        }


def load_runs(
    factory: Any, refs: Sequence[str] = (), *, suite: str | None = None
) -> list[StoredRun]:
    """The runs named by ``refs`` (a run id or a run key each), or every completed run of
    ``suite``. ``LookupError`` for an unknown run or a suite without completed runs."""
    from sqlalchemy import select

    from services.store.db import transaction
    from services.store.models import Prediction, Run, Suite

    with transaction(factory) as s:
        runs: list[Run] = []
        for ref in refs:
            run = s.get(Run, int(ref)) if ref.isdigit() else None
            run = run or s.scalars(select(Run).where(Run.key == ref)).first()
            if run is None:
                raise LookupError(
                    f"no run with id or key {ref!r} in the store; list runs with `prl bench show`"
                )
            if run not in runs:  # a run named twice counts once
                runs.append(run)
        if suite is not None:
            found = s.scalars(
                select(Run)
                .join(Suite, Run.suite_id == Suite.id)
                .where(Suite.name == suite, Run.status == "completed")
                .order_by(Run.id)
            ).all()
            if not found:
                raise LookupError(f"no completed run of suite {suite!r} in the store")
            runs.extend(r for r in found if r not in runs)
        if not runs:
            raise LookupError("no runs given: name them with --run ID|KEY or --suite NAME")
        out = []
        for run in runs:
            preds = s.execute(
                select(Prediction.sample_id, Prediction.components)
                .where(Prediction.run_id == run.id)
                .order_by(Prediction.id)
            ).all()
            out.append(
                StoredRun(
                    run.id,
                    run.key,
                    run.model.name,
                    run.suite.name,
                    run.suite.version,
                    run.status,
                    (run.config or {}).get("reward"),
                    [(sid, dict(comps or {})) for sid, comps in preds],
                )
            )
        return out


def _run_ranges(run: StoredRun, names: Sequence[str]) -> dict[str, tuple[float, float]]:
    if run.reward is None:
        raise ValueError(f"run {run.key!r} stores no reward spec; it cannot be scaled")
    ranges = component_ranges(run.reward)
    missing = [n for n in names if n not in ranges]
    if missing:
        raise ValueError(
            f"run {run.key!r}: its reward has no component {missing[0]!r} (its components: "
            f"{', '.join(ranges)})"
        )
    return ranges


def default_inputs(runs: Sequence[StoredRun], target: str) -> list[str]:
    """The first run's reward components in spec order, without the target."""
    names = [c.name for c in reward_spec_of(runs[0].reward).components]
    return [n for n in names if n != target]


def regression_table(runs: Sequence[StoredRun], inputs: Sequence[str], target: str) -> Table:
    """One scaled row per stored sample of every run (see the module docstring)."""
    tables = []
    for run in runs:
        ranges = _run_ranges(run, [*inputs, target])
        tables.append(
            table_from_rows(
                [(c, c.get(target)) for _, c in run.rows],
                inputs,
                ranges,
                target_range=ranges[target],
                keys=[(run.key, sid) for sid, _ in run.rows],
            )
        )
    return Table(
        list(inputs),
        np.concatenate([t.x for t in tables]),
        np.concatenate([t.target for t in tables]),
        [k for t in tables for k in t.keys],
        sum(t.skipped for t in tables),
    )


def preference_pairs(
    runs: Sequence[StoredRun], inputs: Sequence[str], target: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(better, worse, ties): pairs of the same sample across runs, the higher target better."""
    if len(runs) < 2:
        raise ValueError("preference pairs need at least two runs over the same samples")
    by_sample: dict[str, list[tuple[np.ndarray, float]]] = {}
    for run in runs:
        t = regression_table([run], inputs, target)
        for (_, sid), x, y in zip(t.keys, t.x, t.target, strict=True):
            by_sample.setdefault(sid, []).append((x, float(y)))
    better, worse, ties = [], [], 0
    for items in by_sample.values():
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                (xi, ti), (xj, tj) = items[i], items[j]
                if ti == tj:
                    ties += 1
                elif ti > tj:
                    better.append(xi)
                    worse.append(xj)
                else:
                    better.append(xj)
                    worse.append(xi)
    k = len(inputs)
    return (
        np.asarray(better, dtype=np.float64).reshape(-1, k),
        np.asarray(worse, dtype=np.float64).reshape(-1, k),
        ties,
    )


def fit_from_store(
    factory: Any,
    refs: Sequence[str] = (),
    *,
    suite: str | None = None,
    target: str,
    inputs: Sequence[str] | None = None,
    loss: str = "mse",
    cfg: FitConfig | None = None,
) -> tuple[FitResult, dict[str, Any]]:
    """Fit from stored runs; returns the result and the facts for the summary."""
    runs = load_runs(factory, refs, suite=suite)
    names = list(inputs) if inputs else default_inputs(runs, target)
    if not names:
        raise ValueError(f"no inputs: the reward of run {runs[0].key!r} has only {target!r}")
    if target in names:
        raise ValueError(f"the target {target!r} is also an input; leave it out of --inputs")
    provenance = {
        "source": "store",
        "runs": [r.describe() for r in runs],
        "target": target,
        "loss": loss,
    }
    if loss == "mse":
        t = regression_table(runs, names, target)
        if t.x.shape[0] < MIN_SAMPLES:
            raise ValueError(
                f"too few samples to fit: {t.x.shape[0]} stored rows have every input "
                f"({', '.join(names)}) and the target {target!r}; at least {MIN_SAMPLES} needed"
                + (f" ({t.skipped} rows lack one)" if t.skipped else "")
            )
        provenance["skipped_rows"] = t.skipped
        result = fit_regression(t.x, t.target, names, cfg, provenance)
        facts = {"rows": int(t.x.shape[0]), "skipped_rows": t.skipped}
    elif loss == "bradley_terry":
        better, worse, ties = preference_pairs(runs, names, target)
        if better.shape[0] < MIN_SAMPLES:
            raise ValueError(
                f"too few preference pairs to fit: {better.shape[0]} (same sample, different "
                f"{target!r} across the runs; {ties} ties skipped); at least {MIN_SAMPLES} needed"
            )
        provenance["tied_pairs"] = ties
        result = fit_preferences(better, worse, names, cfg, provenance)
        facts = {"pairs": int(better.shape[0]), "tied_pairs": ties}
    else:
        raise ValueError(f"unknown loss {loss!r} (mse or bradley_terry)")
    return result, {"runs": provenance["runs"], **facts}


def write_model(result: FitResult, out: Path, *, overwrite: bool = False) -> Path:
    """Write the model file (refuses to replace one unless ``overwrite``: the reward service
    identifies a model by path and hash, so a file should not change under a spec)."""
    out = Path(out)
    if out.suffix != ".json":
        raise ValueError(f"{out}: the model file must end in .json")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --force to replace it or choose a new name")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.model.model_dump(mode="json"), indent=1))
    return out


def learned_spec(inputs: Sequence[str], path: Path | str, base: RewardRef | None = None) -> dict:
    """A reward spec (JSON form) aggregating ``inputs`` with the model at ``path``; component
    parameters are taken from ``base`` where it lists the same component."""
    params = {}
    if base is not None:
        params = {c.name: c.params for c in reward_spec_of(base).components}
    return {
        "components": [
            {"name": n, **({"params": params[n]} if params.get(n) else {})} for n in inputs
        ],
        "aggregate": {"method": "learned", "params": {"path": str(Path(path).resolve())}},
    }


def fit_learned_spec(
    base: RewardRef | Mapping[str, Any],
    rows: Iterable[tuple[Mapping[str, Any], float]],
    out: Path | str,
    *,
    target_range: tuple[float, float] = (0.0, 1.0),
    cfg: FitConfig | None = None,
    provenance: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> tuple[dict[str, Any], FitResult]:
    """Fit a learned aggregator over ``base``'s components and return a spec using it.

    ``base``: the spec to compare with (e.g. the harmonic DEVA spec); its components, in order,
    are the inputs, scaled by their ranges under its parameters. ``rows``: (raw component
    values by name, the metric to predict) per sample, e.g. a stored run's
    ``(row["components"], row["components"]["f1"])``; rows missing a value are skipped.
    Writes the model file at ``out`` and returns (the learned spec, the fit result, whose
    ``summary()`` compares with the harmonic mean on the same rows).
    """
    spec = reward_spec_of(base)
    inputs = [c.name for c in spec.components]
    t = table_from_rows(rows, inputs, component_ranges(spec), target_range=target_range)
    extra = {"source": "rows", "base_spec": spec.model_dump(mode="json"), **(provenance or {})}
    result = fit_regression(t.x, t.target, inputs, cfg, extra)
    path = write_model(result, Path(out), overwrite=overwrite)
    return learned_spec(inputs, path, spec), result
