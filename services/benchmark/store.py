"""Where a run's per-sample rows and metrics go: the SQL store, or memory (tests, dry runs).

:class:`RunStore` is the narrow interface the runner needs; :class:`SqlRunStore` implements it
with :mod:`services.store.repository`, one transaction per call, so a killed runner loses at
most the batch in flight and a restart with the same key skips every stored sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class RunSpec:
    """Identity and provenance of a run (see ``services.store.repository.get_or_create_run``)."""

    key: str
    model: str
    model_info: Mapping[str, Any]
    suite: str
    suite_version: str
    content_hash: str
    config: Mapping[str, Any]
    seed: int | None
    git_sha: str | None
    lib_versions: Mapping[str, Any]
    n_samples: int


class RunStore(Protocol):
    def open_run(self, spec: RunSpec) -> int: ...

    def done_ids(self, run_id: int) -> set[str]: ...

    def add(self, run_id: int, rows: Sequence[Mapping[str, Any]]) -> int: ...

    def rows(self, run_id: int) -> list[dict[str, Any]]: ...

    def set_metrics(self, run_id: int, metrics: Sequence[Mapping[str, Any]]) -> None: ...

    def finish(self, run_id: int, status: str) -> None: ...


class SqlRunStore:
    """The SQL store at ``url`` (default ``PRL_DATABASE_URL``), migrated to head on open."""

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        from services.store.db import StoreSettings, make_engine, session_factory, upgrade

        self.url = url or StoreSettings().database_url
        if migrate:
            upgrade(self.url)
        self.engine = make_engine(self.url)
        self.factory = session_factory(self.engine)

    def _tx(self):  # type: ignore[no-untyped-def]
        from services.store.db import transaction

        return transaction(self.factory)

    def open_run(self, spec: RunSpec) -> int:
        from services.store import repository as repo

        info = dict(spec.model_info)
        with self._tx() as s:
            model = repo.get_or_create_model(s, spec.model, **info)
            suite = repo.get_or_create_suite(s, spec.suite, spec.suite_version, spec.content_hash)
            run = repo.get_or_create_run(
                s,
                spec.key,
                model=model,
                suite=suite,
                config=dict(spec.config),
                seed=spec.seed,
                git_sha=spec.git_sha,
                lib_versions=dict(spec.lib_versions),
                n_samples=spec.n_samples,
            )
            return int(run.id)

    def done_ids(self, run_id: int) -> set[str]:
        from services.store import repository as repo

        with self._tx() as s:
            return repo.done_sample_ids(s, run_id)

    def add(self, run_id: int, rows: Sequence[Mapping[str, Any]]) -> int:
        from services.store import repository as repo

        with self._tx() as s:
            return repo.add_predictions(s, run_id, rows)

    def rows(self, run_id: int) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from services.store.models import Prediction

        with self._tx() as s:
            preds = s.scalars(
                select(Prediction).where(Prediction.run_id == run_id).order_by(Prediction.id)
            )
            return [
                {
                    "sample_id": p.sample_id,
                    "prediction": p.prediction,
                    "reward": p.reward,
                    "components": dict(p.components or {}),
                    "error": p.error,
                    "extra": dict(p.extra or {}),
                }
                for p in preds
            ]

    def set_metrics(self, run_id: int, metrics: Sequence[Mapping[str, Any]]) -> None:
        from services.store import repository as repo

        with self._tx() as s:
            repo.set_metrics(s, run_id, metrics)

    def finish(self, run_id: int, status: str) -> None:
        from services.store import repository as repo

        with self._tx() as s:
            repo.finish_run(s, run_id, status)


@dataclass
class MemoryRunStore:
    """In-memory store with the same idempotency rules (first write of a sample wins)."""

    runs: dict[str, int] = field(default_factory=dict)
    specs: dict[int, RunSpec] = field(default_factory=dict)
    predictions: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    metrics: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)

    def open_run(self, spec: RunSpec) -> int:
        if spec.key not in self.runs:
            run_id = len(self.runs) + 1
            self.runs[spec.key] = run_id
            self.specs[run_id] = spec
            self.predictions[run_id] = {}
            self.metrics[run_id] = {}
        run_id = self.runs[spec.key]
        if self.status.get(run_id) != "completed":
            self.status[run_id] = "running"
        return run_id

    def done_ids(self, run_id: int) -> set[str]:
        return set(self.predictions[run_id])

    def add(self, run_id: int, rows: Sequence[Mapping[str, Any]]) -> int:
        table = self.predictions[run_id]
        new = 0
        for r in rows:
            if r["sample_id"] not in table:
                table[r["sample_id"]] = dict(r)
                new += 1
        return new

    def rows(self, run_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.predictions[run_id].values()]

    def set_metrics(self, run_id: int, metrics: Sequence[Mapping[str, Any]]) -> None:
        self.metrics[run_id].update({m["name"]: dict(m) for m in metrics})

    def finish(self, run_id: int, status: str) -> None:
        self.status[run_id] = status
