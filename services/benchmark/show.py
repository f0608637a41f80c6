"""Read-side helpers for ``prl bench show``: a run's status, progress and metrics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.store.models import Metric, Prediction, Run


def _done(session: Session, run_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Prediction).where(Prediction.run_id == run_id)
        )
        or 0
    )


def _row(session: Session, run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "key": run.key,
        "status": run.status,
        "suite": run.suite.name,
        "version": run.suite.version,
        "model": run.model.name,
        "n_samples": run.n_samples,
        "done": _done(session, run.id),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def run_summary(
    session: Session, *, key: str | None = None, run_id: int | None = None
) -> dict[str, Any] | None:
    """Status, progress and metrics of the run with ``key`` or ``run_id`` (None if absent)."""
    stmt = (
        select(Run).where(Run.key == key)
        if key is not None
        else select(Run).where(Run.id == run_id)
    )
    run = session.scalars(stmt).one_or_none()
    if run is None:
        return None
    metrics = session.scalars(select(Metric).where(Metric.run_id == run.id).order_by(Metric.name))
    out = _row(session, run)
    out["metrics"] = [
        {
            "name": m.name,
            "value": m.value,
            "higher_is_better": m.higher_is_better,
            "stderr": m.stderr,
            "ci_low": m.ci_low,
            "ci_high": m.ci_high,
            "n": m.n,
            "reward_spec": m.reward_spec,
            "reward_spec_hash": m.reward_spec_hash,
        }
        for m in metrics
    ]
    return out


def list_runs(session: Session, last: int = 20) -> list[dict[str, Any]]:
    runs = session.scalars(select(Run).order_by(Run.id.desc()).limit(last))
    return [_row(session, r) for r in runs]
