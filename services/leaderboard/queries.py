"""Read side of the leaderboard: pure functions from a ``Session`` to the API models.

Lists use keyset pagination on the row id (stable under concurrent inserts, O(page) per
page at any depth): ``cursor`` is the last id of the previous page.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Integer, Row, Select, func, select, tuple_
from sqlalchemy.orm import Session

from schemas.leaderboard import (
    Leaderboard,
    LeaderboardEntry,
    MetricView,
    Page,
    PredictionView,
    RunDetail,
    RunSummary,
    Series,
    SuiteView,
    TrainingCurves,
    TrainingJobView,
)
from services.benchmark.reward_key import is_reward_metric
from services.store.models import (
    Metric,
    Model,
    Prediction,
    Run,
    Suite,
    TrainingJob,
    TrainingMetric,
)
from services.store.repository import NotFoundError, get_run, get_training_job

_PAIRS_PER_QUERY = 5000  # 2 bound parameters each; SQLite allows 32766 per statement


class QueryError(ValueError):
    """A query that cannot be answered as asked (maps to 422/409 with this message)."""


# ---------------------------------------------------------------- suites


def list_suites(session: Session) -> list[SuiteView]:
    """Every suite version with its run count and the metric names stored for it."""
    suites = session.scalars(select(Suite).order_by(Suite.name, Suite.id)).all()
    counts = dict(session.execute(select(Run.suite_id, func.count()).group_by(Run.suite_id)).all())
    names: dict[int, list[str]] = {}
    rows = session.execute(
        select(Metric.suite_id, Metric.name)
        .group_by(Metric.suite_id, Metric.name)
        .order_by(Metric.name)
    )
    for suite_id, name in rows:
        names.setdefault(suite_id, []).append(name)
    return [
        SuiteView(
            name=s.name,
            version=s.version,
            content_hash=s.content_hash,
            created_at=s.created_at,
            n_runs=counts.get(s.id, 0),
            metrics=names.get(s.id, []),
        )
        for s in suites
    ]


def resolve_suite(session: Session, name: str, version: str | None = None) -> Suite:
    """Suite ``name`` at ``version``, or its most recently stored version when None."""
    stmt = select(Suite).where(Suite.name == name)
    if version is not None:
        stmt = stmt.where(Suite.version == version)
    suite = session.scalars(stmt.order_by(Suite.created_at.desc(), Suite.id.desc())).first()
    if suite is None:
        at = f" version {version!r}" if version is not None else ""
        known = sorted(set(session.scalars(select(Suite.name))))
        raise NotFoundError(f"no suite {name!r}{at}; stored suites: {known}")
    return suite


# ---------------------------------------------------------------- runs


def _summary_fields(run: Run, n_done: int) -> dict:
    return {
        "id": run.id,
        "key": run.key,
        "model": run.model.name,
        "suite": run.suite.name,
        "suite_version": run.suite.version,
        "suite_hash": run.suite.content_hash,
        "config_hash": run.config_hash,
        "seed": run.seed,
        "git_sha": run.git_sha,
        "lib_versions": run.lib_versions or {},
        "status": run.status,
        "source": run.source,
        "n_samples": run.n_samples,
        "n_done": n_done,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def _done_counts(session: Session, run_ids: Sequence[int]) -> dict[int, int]:
    if not run_ids:
        return {}
    rows = session.execute(
        select(Prediction.run_id, func.count())
        .where(Prediction.run_id.in_(run_ids))
        .group_by(Prediction.run_id)
    )
    return dict(rows.all())


def list_runs(
    session: Session,
    *,
    suite: str | None = None,
    version: str | None = None,
    model: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> Page[RunSummary]:
    """Runs, newest first, filtered by suite name (and version), model name and status."""
    stmt: Select = select(Run).join(Run.suite).join(Run.model)
    if suite is not None:
        stmt = stmt.where(Suite.name == suite)
    if version is not None:
        stmt = stmt.where(Suite.version == version)
    if model is not None:
        stmt = stmt.where(Model.name == model)
    if status is not None:
        stmt = stmt.where(Run.status == status)
    if cursor is not None:
        stmt = stmt.where(Run.id < cursor)
    runs = session.scalars(stmt.order_by(Run.id.desc()).limit(limit + 1)).unique().all()
    page, more = runs[:limit], len(runs) > limit
    done = _done_counts(session, [r.id for r in page])
    return Page[RunSummary](
        items=[RunSummary(**_summary_fields(r, done.get(r.id, 0))) for r in page],
        next_cursor=page[-1].id if more else None,
    )


def metric_view(m: Metric) -> MetricView:
    """The wire view of one stored metric row."""
    return MetricView(
        name=m.name,
        value=m.value,
        higher_is_better=m.higher_is_better,
        stderr=m.stderr,
        ci_low=m.ci_low,
        ci_high=m.ci_high,
        n=m.n,
        reward_spec=m.reward_spec,
        reward_spec_hash=m.reward_spec_hash,
    )


def run_detail(
    session: Session,
    run_id: int,
    *,
    limit: int = 50,
    cursor: int | None = None,
    errors_only: bool = False,
) -> RunDetail:
    """One run with its config, model provenance, every metric and a page of its samples."""
    run = get_run(session, run_id)
    metrics = session.scalars(
        select(Metric).where(Metric.run_id == run_id).order_by(Metric.name)
    ).all()
    return RunDetail(
        **_summary_fields(run, _done_counts(session, [run_id]).get(run_id, 0)),
        config=run.config or {},
        model_revision=run.model.revision,
        model_provenance=run.model.provenance or {},
        metrics=[metric_view(m) for m in metrics],
        samples=run_predictions(
            session, run_id, limit=limit, cursor=cursor, errors_only=errors_only
        ),
    )


def run_predictions(
    session: Session,
    run_id: int,
    *,
    limit: int = 50,
    cursor: int | None = None,
    errors_only: bool = False,
) -> Page[PredictionView]:
    """Per-sample drill-down of a run in insertion order; ``errors_only`` keeps failed samples."""
    get_run(session, run_id)
    stmt = select(Prediction).where(Prediction.run_id == run_id)
    if errors_only:
        stmt = stmt.where(Prediction.error.is_not(None))
    if cursor is not None:
        stmt = stmt.where(Prediction.id > cursor)
    rows = session.scalars(stmt.order_by(Prediction.id).limit(limit + 1)).all()
    page, more = rows[:limit], len(rows) > limit
    return Page[PredictionView](
        items=[
            PredictionView(
                sample_id=p.sample_id,
                prediction=p.prediction,
                reward=p.reward,
                components=p.components or {},
                error=p.error,
                extra=p.extra or {},
                created_at=p.created_at,
            )
            for p in page
        ],
        next_cursor=page[-1].id if more else None,
    )


# ---------------------------------------------------------------- leaderboard


def _no_such_metric(session: Session, suite_id: int, metric: str) -> NotFoundError:
    names = session.scalars(
        select(Metric.name)
        .distinct()
        .where(Metric.suite_id == suite_id, Metric.run_completed)
        .order_by(Metric.name)
    ).all()
    return NotFoundError(f"no completed run reports metric {metric!r}; metrics here: {names}")


def metric_direction(directions: set[bool], metric: str) -> bool:
    """The one ``higher_is_better`` that every completed run stored for ``metric``."""
    if len(directions) != 1:
        raise QueryError(
            f"metric {metric!r} is stored both as higher- and lower-is-better on this suite; "
            "fix the runs that disagree before ranking them"
        )
    return next(iter(directions))


def reward_spec_of(
    specs: set[tuple[str | None, str | None]], metric: str
) -> tuple[str | None, str | None]:
    """The one (reward spec, hash) that every ranked run of a mean-reward metric was scored
    with; :class:`QueryError` when they differ (their means are on different scales)."""
    if len(specs) <= 1:
        return next(iter(specs), (None, None))
    listed = ", ".join(sorted(f"{name or '?'} ({(h or 'no hash')[:12]})" for name, h in specs))
    raise QueryError(
        f"metric {metric!r} was scored with different reward specs ({listed}); means of "
        "different rewards are not comparable, so rank one spec at a time: re-score the runs "
        "with one reward (prl bench run --reward NAME) or pick the metric reward[<spec>] of one"
    )


def _ci_overlap(a: LeaderboardEntry, b: LeaderboardEntry) -> bool | None:
    if None in (a.ci_low, a.ci_high, b.ci_low, b.ci_high):
        return None
    return bool(a.ci_low <= b.ci_high and b.ci_low <= a.ci_high)  # type: ignore[operator]


def competition_ranks(values: Sequence[float]) -> list[int]:
    """Ranks 1, 2, 2, 4 … for values already sorted best first (equal values share a rank)."""
    ranks: list[int] = []
    for i, v in enumerate(values):
        ranks.append(ranks[-1] if i and v == values[i - 1] else i + 1)
    return ranks


def _newest(a: Row, b: Row) -> Row:
    """Of two runs with the same best value, the one finished last (then the higher id)."""
    key_a = (a.finished_at is not None, a.finished_at or 0, a.run_id)
    key_b = (b.finished_at is not None, b.finished_at or 0, b.run_id)
    return a if key_a >= key_b else b


def leaderboard(
    session: Session,
    suite: str,
    metric: str,
    *,
    version: str | None = None,
    limit: int = 100,
) -> Leaderboard:
    """Best completed run per model on one suite version, ordered by the metric's direction.

    Two index range scans on ``ix_metrics_leaderboard``: per model the best value
    (``MAX``/``MIN`` … ``GROUP BY model``) and its run count, then the runs holding those
    (model, value) pairs (ties: the newest run). Suite versions are never mixed: without
    ``version`` the newest stored version is used.
    """
    s = resolve_suite(session, suite, version)
    scope = (Metric.suite_id == s.id, Metric.name == metric, Metric.run_completed)
    # one scan of the index: per model max, min, count and the stored directions
    hib = Metric.higher_is_better.cast(Integer)
    groups = session.execute(
        select(
            Metric.model_id,
            func.max(Metric.value),
            func.min(Metric.value),
            func.count(),
            func.min(hib),
            func.max(hib),
            func.min(Metric.reward_spec_hash),
            func.max(Metric.reward_spec_hash),
        )
        .where(*scope)
        .group_by(Metric.model_id)
    ).all()
    if not groups:
        raise _no_such_metric(session, s.id, metric)
    higher = metric_direction({bool(d) for g in groups for d in (g[4], g[5])}, metric)
    spec, spec_hash = (None, None)
    hashes = {h for g in groups for h in (g[6], g[7]) if h is not None}
    if is_reward_metric(metric) and len(hashes) > 1:
        # the names for the message (the index covers the hashes, not the names: error path only)
        specs = session.execute(
            select(Metric.reward_spec, Metric.reward_spec_hash).distinct().where(*scope)
        ).all()
        reward_spec_of({(a, b) for a, b in specs}, metric)
    best = [(g[0], g[1] if higher else g[2], g[3]) for g in groups]
    n_runs = {model_id: n for model_id, _, n in best}
    # the runs holding each model's best value; a separate query with a literal list keeps
    # the planner on the index (joining the aggregate back makes SQLite probe every run)
    columns = (
        Metric.model_id,
        Metric.run_id,
        Metric.value,
        Metric.stderr,
        Metric.ci_low,
        Metric.ci_high,
        Metric.n,
        Run.config_hash,
        Run.seed,
        Run.git_sha,
        Run.finished_at,
        Model.name.label("model_name"),
        Metric.reward_spec,
        Metric.reward_spec_hash,
    )
    rows: list[Row] = []
    for start in range(0, len(best), _PAIRS_PER_QUERY):
        pairs = [(m, v) for m, v, _ in best[start : start + _PAIRS_PER_QUERY]]
        rows += session.execute(
            select(*columns)
            .join(Run, Run.id == Metric.run_id)
            .join(Model, Model.id == Metric.model_id)
            .where(*scope, tuple_(Metric.model_id, Metric.value).in_(pairs))
        ).all()
    per_model: dict[int, Row] = {}
    for r in rows:
        per_model[r.model_id] = _newest(per_model[r.model_id], r) if r.model_id in per_model else r
    sign = -1.0 if higher else 1.0
    ordered = sorted(per_model.values(), key=lambda r: (sign * r.value, r.model_name))[:limit]
    ranks = competition_ranks([r.value for r in ordered])
    entries = [
        LeaderboardEntry(
            rank=rank,
            model=r.model_name,
            run_id=r.run_id,
            value=r.value,
            stderr=r.stderr,
            ci_low=r.ci_low,
            ci_high=r.ci_high,
            n=r.n,
            n_runs=n_runs[r.model_id],
            config_hash=r.config_hash,
            seed=r.seed,
            git_sha=r.git_sha,
            finished_at=r.finished_at,
            reward_spec=r.reward_spec,
            reward_spec_hash=r.reward_spec_hash,
        )
        for rank, r in zip(ranks, ordered, strict=True)
    ]
    for e in entries:
        e.overlaps_best = _ci_overlap(e, entries[0])
    if is_reward_metric(metric) and hashes:
        spec_hash = next(iter(hashes))
        spec = next((e.reward_spec for e in entries if e.reward_spec), None)
    return Leaderboard(
        suite=s.name,
        version=s.version,
        content_hash=s.content_hash,
        metric=metric,
        higher_is_better=higher,
        reward_spec=spec,
        reward_spec_hash=spec_hash,
        entries=entries,
    )


# ---------------------------------------------------------------- training jobs


def _job_view(job: TrainingJob) -> TrainingJobView:
    return TrainingJobView(
        id=job.id,
        name=job.name,
        model=None if job.model is None else job.model.name,
        status=job.status,
        config_hash=job.config_hash,
        seed=job.seed,
        git_sha=job.git_sha,
        message=job.message,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def list_training_jobs(
    session: Session, *, limit: int = 50, cursor: int | None = None
) -> Page[TrainingJobView]:
    """Training jobs, newest first."""
    stmt = select(TrainingJob)
    if cursor is not None:
        stmt = stmt.where(TrainingJob.id < cursor)
    jobs = session.scalars(stmt.order_by(TrainingJob.id.desc()).limit(limit + 1)).all()
    page, more = jobs[:limit], len(jobs) > limit
    return Page[TrainingJobView](
        items=[_job_view(j) for j in page], next_cursor=page[-1].id if more else None
    )


def thin(series: Series, max_points: int) -> Series:
    """At most ``max_points`` (≥ 2) evenly spaced points, first and last included:
    indices ``⌊i·(n−1)/(m−1)⌋`` for i = 0 … m−1 (strictly increasing because n > m)."""
    n, m = len(series.steps), max(max_points, 2)
    if n <= m:
        return series
    keep = [i * (n - 1) // (m - 1) for i in range(m)]
    return Series(steps=[series.steps[i] for i in keep], values=[series.values[i] for i in keep])


def training_curves(
    session: Session,
    job_id: int,
    names: Sequence[str] | None = None,
    *,
    max_points: int | None = None,
) -> TrainingCurves:
    """Per-step series of a job (all metric names, or only ``names``), steps ascending;
    ``max_points`` thins each series for plotting (see :func:`thin`)."""
    job = get_training_job(session, job_id)
    stmt = select(TrainingMetric.name, TrainingMetric.step, TrainingMetric.value).where(
        TrainingMetric.job_id == job_id
    )
    if names:
        # a name with NUL cannot be stored (and PostgreSQL refuses it in a query)
        stmt = stmt.where(TrainingMetric.name.in_([n for n in names if "\x00" not in n]))
    series: dict[str, Series] = {}
    for name, step, value in session.execute(
        stmt.order_by(TrainingMetric.name, TrainingMetric.step)
    ):
        s = series.setdefault(name, Series(steps=[], values=[]))
        s.steps.append(step)
        s.values.append(value)
    if max_points is not None:
        series = {name: thin(s, max_points) for name, s in series.items()}
    return TrainingCurves(job=_job_view(job), series=series)
