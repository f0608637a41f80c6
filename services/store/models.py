"""SQLAlchemy 2.0 typed models of the result store.

Provenance (docs/design.md, "Storage"): every result row (a prediction, a metric, a training-step
metric) hangs off a run or a training job that carries the suite name + version + content
hash, the model id, the config and its hash, the git sha, the library versions, the seed and
timestamps; result rows carry their own ``created_at``. The schema is owned by the Alembic
migrations in ``services/store/migrations``; a test checks that they match these models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    inspect,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
"""Life cycle of a benchmark run or a training job."""

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    SQLite drops the offset; values are normalised to UTC on the way in and re-tagged as UTC
    on the way out, so both backends return the same aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict] = {dict[str, Any]: JSON, datetime: UTCDateTime}


class Model(Base):
    """A model under evaluation: a name plus where it came from (checkpoint, revision, adapter)."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    revision: Mapped[str | None] = mapped_column(String(255))
    adapter: Mapped[str | None] = mapped_column(String(64))
    provenance: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suite(Base):
    """A benchmark suite at a fixed version; the content hash pins the exact samples."""

    __tablename__ = "suites"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_suites_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    """One evaluation of a model on a suite with one config and seed; resumable by ``key``."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_suite_status_model", "suite_id", "status", "model_id"),
        Index("ix_runs_model_id", "model_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    suite_id: Mapped[int] = mapped_column(ForeignKey("suites.id", ondelete="CASCADE"))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    config_hash: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    git_sha: Mapped[str | None] = mapped_column(String(64))
    lib_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    source: Mapped[str] = mapped_column(String(16), default="local")
    n_samples: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    model: Mapped[Model] = relationship(lazy="joined")
    suite: Mapped[Suite] = relationship(lazy="joined")


class Prediction(Base):
    """The model's answer for one sample of a run and its reward; unique per (run, sample)."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("run_id", "sample_id", name="uq_predictions_run_id_sample_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    sample_id: Mapped[str] = mapped_column(String(255))
    prediction: Mapped[str | None] = mapped_column(Text)
    reward: Mapped[float | None] = mapped_column(Float)
    components: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Metric(Base):
    """One aggregate metric of a run (with its direction and uncertainty); unique per name."""

    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("run_id", "name", name="uq_metrics_run_id_name"),
        Index(
            "ix_metrics_leaderboard",
            "suite_id",
            "name",
            "run_completed",
            "model_id",
            "value",
            "higher_is_better",
            "reward_spec_hash",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    # copies of the run's suite, model and "status == completed", so that a leaderboard is
    # one covering-index range scan (ix_metrics_leaderboard) instead of a join over every
    # run; kept in sync by the repository and by ``_sync_run_completed`` below
    suite_id: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[int] = mapped_column(Integer)
    run_completed: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    higher_is_better: Mapped[bool] = mapped_column(Boolean, default=True)
    stderr: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int | None] = mapped_column(Integer)
    # a mean-reward metric (``reward[dig]``) names the reward spec it averages and its hash
    # (services/benchmark/reward_key.py); the leaderboard never ranks two hashes together
    reward_spec: Mapped[str | None] = mapped_column(String(128))
    reward_spec_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


@event.listens_for(Session, "after_flush")
def _sync_run_completed(session: Session, _context: Any) -> None:
    """Whenever a run's status is flushed, copy ``status == 'completed'`` to its metrics."""
    for obj in list(session.dirty) + list(session.new):
        if isinstance(obj, Run) and inspect(obj).attrs.status.history.has_changes():
            session.connection().execute(
                update(Metric)
                .where(Metric.run_id == obj.id)
                .values(run_completed=obj.status == "completed")
                .execution_options(synchronize_session=False)
            )


class TrainingJob(Base):
    """A training run (trainer service or ``prl train``) whose per-step metrics are logged."""

    __tablename__ = "training_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    config_hash: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    git_sha: Mapped[str | None] = mapped_column(String(64))
    lib_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    model: Mapped[Model | None] = relationship(lazy="joined")


class TrainingMetric(Base):
    """One scalar (``reward/mean``, ``loss/gfn``, …) at one optimiser step of a training job."""

    __tablename__ = "training_metrics"
    __table_args__ = (
        UniqueConstraint("job_id", "step", "name", name="uq_training_metrics_job_id_step_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyRecord(Base):
    """A stored response for an ``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header).

    ``principal`` is a hash of the caller's API key, so two callers' keys never collide;
    ``fingerprint`` is a hash of the request body (same key + other body → 422).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("principal", "key", name="uq_idempotency_keys_principal_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
