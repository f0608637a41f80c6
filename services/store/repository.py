"""Write side of the result store: plain functions over a SQLAlchemy ``Session``.

Transactions belong to the caller: these functions ``flush`` but never ``commit``. Wrap each
unit of work (a batch of predictions, a step's metrics) in ``with transaction(factory) as s:``
(:func:`services.store.db.transaction`) so a crash loses at most the batch in flight.

Idempotency: everything that a restarted runner or a retried upload may write twice is keyed
— models by name, suites by (name, version), runs by ``key``, predictions by (run, sample),
metrics by (run, name), training metrics by (job, step, name) — and written with
``INSERT … ON CONFLICT`` so concurrent writers cannot duplicate rows either. A resumed run
never double-counts a sample.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.store.models import (
    RUN_STATUSES,
    Metric,
    Model,
    Prediction,
    Run,
    Suite,
    TrainingJob,
    TrainingMetric,
    utcnow,
)

log = logging.getLogger(__name__)

TERMINAL_STATUSES = ("completed", "failed", "cancelled")
PREDICTION_FIELDS = ("sample_id", "prediction", "reward", "components", "error", "extra")
METRIC_FIELDS = (
    "name",
    "value",
    "higher_is_better",
    "stderr",
    "ci_low",
    "ci_high",
    "n",
    "reward_spec",
    "reward_spec_hash",
)
_INT32_MAX = 2**31 - 1  # INTEGER columns on PostgreSQL


class StoreError(ValueError):
    """A write that contradicts what is already stored (the message says what to change)."""


class NotFoundError(LookupError):
    """No row with that id."""


# ---------------------------------------------------------------- hashing and keys


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal configs give equal strings (and hashes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def config_hash(config: Mapping[str, Any]) -> str:
    """``sha256(canonical_json(config))`` as 64 hex digits."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def make_run_key(
    model: str, suite: str, version: str, content_hash: str, cfg_hash: str, seed: int | None
) -> str:
    """Run identity: ``sha256`` of model, suite name/version/content hash, config hash, seed.

    Restarting with the same five inputs gives the same key, hence the same run (resume).
    """
    parts = [model, suite, version, content_hash, cfg_hash, "" if seed is None else str(seed)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


# ---------------------------------------------------------------- portable upserts


def _insert(session: Session, table: Table):  # type: ignore[no-untyped-def]
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"unsupported database dialect {name!r}: use SQLite or PostgreSQL")


def _insert_ignore(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> int:
    """``INSERT … ON CONFLICT (keys) DO NOTHING``; returns how many rows were new.

    One statement compiled once and executed for all ``rows`` (SQLAlchemy's
    "insertmanyvalues" batching), so 100 000 predictions cost one compilation, not 200;
    ``RETURNING`` counts the rows really inserted on SQLite and PostgreSQL alike.
    """
    if not rows:
        return 0
    stmt = _insert(session, table).on_conflict_do_nothing(index_elements=keys)
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        return _sqlite_executemany(conn, table, stmt, rows)
    return len(session.execute(stmt.returning(table.c[keys[0]]), list(rows)).all())


def _sqlite_executemany(conn: Connection, table: Table, stmt: Any, rows: Sequence[dict]) -> int:
    """SQLite's own ``executemany`` of the compiled statement, the values passed through each
    column type's bind processor (JSON serialiser, datetime format) exactly as SQLAlchemy
    would: ~3× faster than its per-row parameter processing for 100 000 rows. sqlite3's
    ``rowcount`` after ``executemany`` is the number of rows inserted (a conflict changes 0)."""
    cols = list(rows[0])
    compiled = stmt.compile(dialect=conn.dialect, column_keys=cols)
    order = list(compiled.positiontup or [])
    if sorted(order) != sorted(cols):  # not the plain positional form we expect
        return len(conn.execute(stmt.returning(table.c[cols[0]]), list(rows)).all())
    procs = [table.c[c].type.bind_processor(conn.dialect) for c in order]
    params = [
        tuple(v if p is None else p(v) for p, v in zip(procs, (r[c] for c in order), strict=True))
        for r in rows
    ]
    return max(conn.exec_driver_sql(compiled.string, params).rowcount, 0)


def _upsert(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` every non-key column to the new value."""
    if not rows:
        return
    stmt = _insert(session, table)
    cols = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in cols})
    session.execute(stmt, list(rows))


# ---------------------------------------------------------------- models and suites


def get_or_create_model(session: Session, name: str, **provenance: Any) -> Model:
    """The model called ``name``, created on first use.

    ``revision`` and ``adapter`` go to their columns, any other keyword to the ``provenance``
    JSON. On an existing model, missing fields are filled in; stored values are never changed.
    """
    if not name:
        raise StoreError("model name must be a non-empty string")
    provenance = _jsonable(provenance)
    revision = provenance.pop("revision", None)
    adapter = provenance.pop("adapter", None)
    now = utcnow()
    _insert_ignore(
        session,
        Model.__table__,
        [
            {
                "name": name,
                "revision": revision,
                "adapter": adapter,
                "provenance": provenance,
                "created_at": now,
            }
        ],
        ["name"],
    )
    model = session.scalars(
        select(Model).where(Model.name == name).execution_options(populate_existing=True)
    ).one()
    if model.revision is None and revision is not None:
        model.revision = revision
    if model.adapter is None and adapter is not None:
        model.adapter = adapter
    new = {k: v for k, v in provenance.items() if k not in (model.provenance or {})}
    if new:
        model.provenance = {**(model.provenance or {}), **new}
    session.flush()
    return model


def get_or_create_suite(session: Session, name: str, version: str, content_hash: str) -> Suite:
    """The suite ``name`` at ``version``; its content hash must match the stored one.

    Raises :class:`StoreError` when the same name and version were stored with other content
    (the samples changed without a version bump: results would not be comparable).
    """
    if not (name and version and content_hash):
        raise StoreError("suite name, version and content_hash must all be non-empty")
    _insert_ignore(
        session,
        Suite.__table__,
        [{"name": name, "version": version, "content_hash": content_hash, "created_at": utcnow()}],
        ["name", "version"],
    )
    suite = session.scalars(select(Suite).where(Suite.name == name, Suite.version == version)).one()
    if suite.content_hash != content_hash:
        raise StoreError(
            f"suite {name!r} version {version!r} is stored with content hash "
            f"{suite.content_hash[:12]}…, this one has {content_hash[:12]}…: the samples "
            "changed, so give the suite a new version"
        )
    return suite


# ---------------------------------------------------------------- runs


def get_or_create_run(
    session: Session,
    key: str,
    *,
    model: Model | str,
    suite: Suite,
    config: Mapping[str, Any],
    seed: int | None,
    git_sha: str | None,
    lib_versions: Mapping[str, Any],
    n_samples: int | None = None,
    source: str = "local",
) -> Run:
    """The run with ``key``, created (status ``running``) or resumed.

    A resumed run must have the same model, suite and config hash, else :class:`StoreError`
    (a key reused for a different experiment). Resuming a run that is not ``completed`` puts
    it back to ``running``; a completed run is returned unchanged.
    """
    run, _ = create_or_resume_run(
        session,
        key,
        model=model,
        suite=suite,
        config=config,
        seed=seed,
        git_sha=git_sha,
        lib_versions=lib_versions,
        n_samples=n_samples,
        source=source,
    )
    return run


def create_or_resume_run(
    session: Session,
    key: str,
    *,
    model: Model | str,
    suite: Suite,
    config: Mapping[str, Any],
    seed: int | None,
    git_sha: str | None,
    lib_versions: Mapping[str, Any],
    n_samples: int | None = None,
    source: str = "local",
) -> tuple[Run, bool]:
    """:func:`get_or_create_run`, and whether this call's insert created the row.

    "Created" is the ``INSERT … ON CONFLICT DO NOTHING``'s own answer, not a look-up before
    it: of several concurrent writers of one key exactly one gets ``True``.
    """
    if not key:
        raise StoreError("run key must be a non-empty string")
    model_row = get_or_create_model(session, model) if isinstance(model, str) else model
    cfg = _jsonable(dict(config))
    digest = config_hash(cfg)
    now = utcnow()
    created = _insert_ignore(
        session,
        Run.__table__,
        [
            {
                "key": key,
                "model_id": model_row.id,
                "suite_id": suite.id,
                "config": cfg,
                "config_hash": digest,
                "seed": seed,
                "git_sha": git_sha,
                "lib_versions": _jsonable(dict(lib_versions)),
                "status": "running",
                "source": source,
                "n_samples": n_samples,
                "created_at": now,
                "started_at": now,
                "updated_at": now,
            }
        ],
        ["key"],
    )
    run = session.scalars(
        select(Run).where(Run.key == key).execution_options(populate_existing=True)
    ).one()
    if (run.model_id, run.suite_id, run.config_hash) != (model_row.id, suite.id, digest):
        raise StoreError(
            f"run key {key!r} already belongs to model {run.model.name!r} on suite "
            f"{run.suite.name!r}@{run.suite.version} with config {run.config_hash[:12]}…; "
            "a different experiment needs a different key"
        )
    if run.status != "completed" and run.status != "running":
        log.info("resuming run %s (was %s)", key, run.status)
        run.status = "running"
        run.finished_at = None
    if n_samples is not None and run.n_samples is None:
        run.n_samples = n_samples
    session.flush()
    return run, created == 1


def get_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFoundError(f"no run with id {run_id}")
    return run


def done_sample_ids(session: Session, run_id: int) -> set[str]:
    """Sample ids that already have a stored prediction in this run (skipped on resume)."""
    rows = session.scalars(select(Prediction.sample_id).where(Prediction.run_id == run_id))
    return set(rows)


def _jsonable(obj: Any) -> Any:
    """A JSON-safe copy: dataclasses → dicts, tuples/sets → lists, non-finite floats → None,
    anything else unknown → ``str``. (Plain JSON types are tested first: this runs on every
    stored prediction.)"""
    if obj is None or isinstance(obj, str | int):  # bool is an int
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "item"):  # numpy / torch scalars
        return _jsonable(obj.item())
    return str(obj)


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


_PREDICTION_KEYS = frozenset(PREDICTION_FIELDS)


def _prediction_row(run_id: int, row: Mapping[str, Any], now: Any) -> dict[str, Any]:
    """One ``predictions`` row; keys outside :data:`PREDICTION_FIELDS` go to ``extra``."""
    sample_id = row.get("sample_id")
    if sample_id in (None, ""):
        raise StoreError(f"prediction row without sample_id: {dict(row)!r:.200}")
    extra = dict(row.get("extra") or {})
    for k in row.keys() - _PREDICTION_KEYS:
        extra[k] = row[k]
    raw_reward = row.get("reward")
    reward = _finite_or_none(raw_reward)
    if raw_reward is not None and reward is None:
        extra["nonfinite_reward"] = str(raw_reward)
    error = row.get("error")
    if error is not None and not isinstance(error, Mapping):
        error = {"code": "error", "message": str(error)}
    components = row.get("components")
    prediction = row.get("prediction")
    if prediction is not None:
        prediction = str(prediction)
        if "\x00" in prediction:
            prediction = prediction.replace("\x00", "\ufffd")
    return {
        "run_id": run_id,
        "sample_id": str(sample_id),
        "prediction": prediction,
        "reward": reward,
        "components": {k: _finite_or_none(v) for k, v in components.items()} if components else {},
        "error": None if error is None else _jsonable(error),
        "extra": _jsonable(extra) if extra else {},
        "created_at": now,
    }


def add_predictions(session: Session, run_id: int, rows: Sequence[Mapping[str, Any]]) -> int:
    """Store per-sample predictions; returns how many were new.

    Idempotent on (run_id, sample_id): a sample already stored — by an earlier attempt, an
    earlier row of this batch, or a concurrent writer — is left as it was (first write wins),
    so re-sending a batch after a crash never double-counts.
    """
    now = utcnow()
    seen: set[str] = set()
    values = []
    for row in rows:
        value = _prediction_row(run_id, row, now)
        if value["sample_id"] not in seen:
            seen.add(value["sample_id"])
            values.append(value)
    if not values:
        return 0
    added = _insert_ignore(session, Prediction.__table__, values, ["run_id", "sample_id"])
    session.execute(
        Run.__table__.update().where(Run.__table__.c.id == run_id).values(updated_at=now)
    )
    return added


def _metric_row(run: Run, m: Mapping[str, Any], now: Any) -> dict[str, Any]:
    if not m.get("name"):
        raise StoreError(f"metric without a name: {dict(m)!r:.200}")
    value = _finite_or_none(m.get("value"))
    if value is None:
        raise StoreError(f"metric {m['name']!r} has no finite value ({m.get('value')!r})")
    return {
        "run_id": run.id,
        "suite_id": run.suite_id,
        "model_id": run.model_id,
        "run_completed": run.status == "completed",
        "name": str(m["name"]),
        "value": value,
        "higher_is_better": bool(m.get("higher_is_better", True)),
        "stderr": _finite_or_none(m.get("stderr")),
        "ci_low": _finite_or_none(m.get("ci_low")),
        "ci_high": _finite_or_none(m.get("ci_high")),
        "n": None if m.get("n") is None else int(m["n"]),
        "reward_spec": None if m.get("reward_spec") is None else str(m["reward_spec"]),
        "reward_spec_hash": None
        if m.get("reward_spec_hash") is None
        else str(m["reward_spec_hash"]),
        "created_at": now,
    }


def set_metrics(session: Session, run_id: int, metrics: Sequence[Mapping[str, Any]]) -> None:
    """Write a run's aggregate metrics; a metric already stored under a name is replaced."""
    now = utcnow()
    run = get_run(session, run_id)
    rows = {r["name"]: r for r in (_metric_row(run, m, now) for m in metrics)}
    if rows:
        _upsert(session, Metric.__table__, list(rows.values()), ["run_id", "name"])


def finish_run(session: Session, run_id: int, status: str = "completed") -> Run:
    """Close a run with a terminal ``status`` and its ``finished_at``."""
    if status not in TERMINAL_STATUSES:
        raise StoreError(f"finish status must be one of {TERMINAL_STATUSES}, got {status!r}")
    run = get_run(session, run_id)
    run.status = status
    run.finished_at = utcnow()
    session.flush()
    return run


# ---------------------------------------------------------------- training jobs


def create_training_job(
    session: Session,
    name: str,
    *,
    config: Mapping[str, Any],
    model: Model | str | None = None,
    seed: int | None = None,
    git_sha: str | None = None,
    lib_versions: Mapping[str, Any] | None = None,
    status: str = "pending",
) -> TrainingJob:
    """A new training job row (one per submitted job; ids are not reused)."""
    _check_status(status)
    model_row = get_or_create_model(session, model) if isinstance(model, str) else model
    cfg = _jsonable(dict(config))
    now = utcnow()
    job = TrainingJob(
        name=name,
        model_id=None if model_row is None else model_row.id,
        config=cfg,
        config_hash=config_hash(cfg),
        seed=seed,
        git_sha=git_sha,
        lib_versions=_jsonable(dict(lib_versions or {})),
        status=status,
        created_at=now,
        started_at=now if status == "running" else None,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    return job


def get_training_job(session: Session, job_id: int) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise NotFoundError(f"no training job with id {job_id}")
    return job


def add_training_metrics(
    session: Session, job_id: int, step: int, metrics: Mapping[str, float]
) -> int:
    """Log scalars at optimiser ``step``; re-logging a (step, name) overwrites it.

    Non-finite values (NaN, ±inf) are skipped with a warning; returns how many were written.
    """
    if not 0 <= step <= _INT32_MAX:
        raise StoreError(f"step must be in [0, {_INT32_MAX}], got {step}")
    now = utcnow()
    rows = []
    for name, value in metrics.items():
        v = _finite_or_none(value)
        if v is None:
            log.warning("job %s step %s: skipping non-finite %s=%r", job_id, step, name, value)
            continue
        rows.append({"job_id": job_id, "step": step, "name": name, "value": v, "created_at": now})
    if rows:
        _upsert(session, TrainingMetric.__table__, rows, ["job_id", "step", "name"])
    return len(rows)


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise StoreError(f"status must be one of {RUN_STATUSES}, got {status!r}")


def set_job_status(
    session: Session, job_id: int, status: str, message: str | None = None
) -> TrainingJob:
    """Move a job to ``status``; ``running`` stamps ``started_at``, terminal ones ``finished_at``."""
    _check_status(status)
    job = get_training_job(session, job_id)
    job.status = status
    if message is not None:
        job.message = message
    now = utcnow()
    if status == "running" and job.started_at is None:
        job.started_at = now
    if status in TERMINAL_STATUSES:
        job.finished_at = now
    session.flush()
    return job
