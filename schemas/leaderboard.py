"""Leaderboard service API models: suites, runs, metrics, leaderboards, training curves, uploads.

Every run carries its provenance (docs/design.md, "Storage"): suite name + version + content hash,
model, config hash, git sha, library versions, seed and timestamps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictFloat,
    model_validator,
)

from schemas.text import reject_lone_surrogates

INT32_MAX = 2**31 - 1
INT64 = (-(2**63), 2**63 - 1)
NO_NUL = r"^[^\x00]*$"
"""Text stored in SQL may not hold NUL characters (PostgreSQL rejects them)."""


def _json_integer(value: Any) -> Any:
    """JSON Schema's ``integer`` includes ``2250.0``; pydantic's strict int does not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An ``integer`` as JSON Schema means it: ``3`` and ``3.0`` yes; ``true``, ``"3"``, ``3.5`` no.
# (The bounds sit inside the before-validator so they reach the JSON schema as min/max.)
Count = Annotated[int, Strict(), Field(ge=0, le=INT32_MAX), BeforeValidator(_json_integer)]
Int64 = Annotated[int, Strict(), Field(ge=INT64[0], le=INT64[1]), BeforeValidator(_json_integer)]
# Numbers and booleans on upload are strict: JSON ``true`` is not 1, ``0`` is not false and
# ``"0.5"`` is not 0.5 (the schema says ``number``/``integer``/``boolean``, so lax coercion
# would accept what the schema declares invalid).
RunStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next (None: last)."""

    items: list[T]
    next_cursor: int | None = None


class SuiteView(BaseModel):
    name: str
    version: str
    content_hash: str
    created_at: datetime
    n_runs: int = 0
    metrics: list[str] = Field(default_factory=list, description="metric names stored for it")


class SuiteList(BaseModel):
    suites: list[SuiteView]


class MetricView(BaseModel):
    name: str
    value: float
    higher_is_better: bool = True
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    reward_spec: str | None = Field(
        None, description="for a mean-reward metric: the reward spec it averages (preset name)"
    )
    reward_spec_hash: str | None = Field(None, description="sha256 of the resolved reward spec")


class RunSummary(BaseModel):
    id: int
    key: str
    model: str
    suite: str
    suite_version: str
    suite_hash: str
    config_hash: str
    seed: int | None = None
    git_sha: str | None = None
    lib_versions: dict[str, Any] = Field(default_factory=dict)
    status: RunStatus
    source: str = "local"
    n_samples: int | None = None
    n_done: int = Field(0, description="samples with a stored prediction")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class PredictionView(BaseModel):
    sample_id: str
    prediction: str | None = None
    reward: float | None = None
    components: dict[str, float | None] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class RunDetail(RunSummary):
    config: dict[str, Any] = Field(default_factory=dict)
    model_revision: str | None = None
    model_provenance: dict[str, Any] = Field(default_factory=dict)
    metrics: list[MetricView] = Field(default_factory=list)
    samples: Page[PredictionView] | None = Field(
        None, description="per-sample drill-down, one page (see the route's limit/cursor)"
    )


class LeaderboardEntry(BaseModel):
    rank: int = Field(description="competition rank (ties share a rank)")
    model: str
    run_id: int
    value: float
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    overlaps_best: bool | None = Field(
        None, description="its CI overlaps the leader's (None when either has no CI)"
    )
    n_runs: int = Field(description="completed runs of this model with this metric")
    config_hash: str
    seed: int | None = None
    git_sha: str | None = None
    finished_at: datetime | None = None
    reward_spec: str | None = Field(
        None, description="for a mean-reward metric: the reward spec it averages (preset name)"
    )
    reward_spec_hash: str | None = Field(None, description="sha256 of the resolved reward spec")


class Leaderboard(BaseModel):
    suite: str
    version: str
    content_hash: str
    metric: str
    higher_is_better: bool
    reward_spec: str | None = Field(
        None, description="the one reward spec every ranked run was scored with (reward metrics)"
    )
    reward_spec_hash: str | None = None
    entries: list[LeaderboardEntry]


class TrainingJobView(BaseModel):
    id: int
    name: str
    model: str | None = None
    status: RunStatus
    config_hash: str
    seed: int | None = None
    git_sha: str | None = None
    message: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Series(BaseModel):
    steps: list[int]
    values: list[float]


class TrainingCurves(BaseModel):
    job: TrainingJobView
    series: dict[str, Series] = Field(description="metric name → its values by step")


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    revision: str | None = Field(None, max_length=255, pattern=NO_NUL)
    adapter: str | None = Field(None, max_length=64, pattern=NO_NUL)
    provenance: dict[str, Any] = Field(default_factory=dict)


class SuiteRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    version: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    content_hash: str = Field(min_length=1, max_length=128, pattern=NO_NUL)


class PredictionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    prediction: str | None = Field(None, description="NUL characters are stored as U+FFFD")
    reward: StrictFloat | None = None
    components: dict[str, StrictFloat | None] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class MetricIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=NO_NUL)
    value: float = Field(allow_inf_nan=False, strict=True)
    higher_is_better: bool = Field(True, strict=True)
    stderr: float | None = Field(None, allow_inf_nan=False, strict=True)
    ci_low: float | None = Field(None, allow_inf_nan=False, strict=True)
    ci_high: float | None = Field(None, allow_inf_nan=False, strict=True)
    n: Count | None = None
    reward_spec: str | None = Field(
        None,
        max_length=128,
        pattern=NO_NUL,
        description="mean-reward metrics: the reward spec's name (default: from the name "
        "``reward[<spec>]`` or the run config's ``reward``)",
    )
    reward_spec_hash: str | None = Field(None, max_length=64, pattern=NO_NUL)


class RunUpload(BaseModel):
    """A finished (or partial) run from a remote runner, written in one transaction.

    ``key`` defaults to the run key derived from model, suite, config hash and seed, so a
    re-upload of the same run lands on the same row; predictions already stored are kept.
    """

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(None, min_length=1, max_length=128, pattern=NO_NUL)
    model: ModelRef
    suite: SuiteRef
    config: dict[str, Any] = Field(default_factory=dict)
    seed: Int64 | None = None
    git_sha: str | None = Field(None, max_length=64, pattern=NO_NUL)
    lib_versions: dict[str, Any] = Field(default_factory=dict)
    status: Literal["completed", "failed", "cancelled", "running"] = "completed"
    n_samples: Count | None = None
    predictions: list[PredictionIn] = Field(default_factory=list, max_length=100_000)
    metrics: list[MetricIn] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _valid_unicode(self) -> RunUpload:
        """422 for a lone surrogate anywhere (it would fail the fingerprint and the store)."""
        reject_lone_surrogates(self)
        return self


class RunUploadResult(BaseModel):
    id: int
    key: str
    created: bool = Field(description="false when the upload landed on an existing run")
    predictions_added: int
    predictions_total: int
    metrics: int


class ComponentRange(BaseModel):
    name: str
    weight: float
    lo: float = Field(description="declared lower end of the component's range")
    hi: float = Field(description="declared upper end; scaled value = (v - lo) / (hi - lo)")


class RewardBreakdown(BaseModel):
    """A run's reward spec resolved: how its per-sample reward is built from components."""

    name: str
    hash: str
    aggregate: str
    aggregate_params: dict[str, Any] = Field(default_factory=dict)
    components: list[ComponentRange]


class BoxPair(BaseModel):
    pred: int = Field(description="index into pred_boxes")
    gt: int = Field(description="index into gt_boxes")
    iou: float
    tp: bool = Field(description="IoU >= 0.5 (a true positive)")


class SampleDetail(BaseModel):
    """One sample of a run with its boxes (original-image pixels) and the matched pairs."""

    sample_id: str
    prediction: str | None = None
    reward: float | None = None
    components: dict[str, float | None] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    image_size: list[float] | None = None
    gt_boxes: list[list[float]] = Field(default_factory=list)
    pred_boxes: list[list[float]] = Field(default_factory=list)
    pairs: list[BoxPair] = Field(default_factory=list)
    n_images: int = 0


class RunExtras(BaseModel):
    run_id: int
    metrics: list[MetricView] = Field(default_factory=list)
    reward_spec: str | None = None
    reward_spec_hash: str | None = None
    training_job_id: int | None = Field(
        None, description="the training job whose run_dir holds the evaluated checkpoint"
    )


class RunExtrasList(BaseModel):
    runs: list[RunExtras]
