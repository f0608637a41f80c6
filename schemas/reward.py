"""Reward requests and responses (wire contract v1; docs/design.md, "A reward request")."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from schemas.geometry import Box, Frame


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


Finite = Annotated[float, AfterValidator(_finite)]


class BoxSolution(BaseModel):
    """Ground truth of a box task: any number of boxes (none included) in original-image pixels."""

    model_config = ConfigDict(extra="forbid")

    boxes: list[Box] = Field(description="[[x1, y1, x2, y2], ...] in original-image pixels")
    labels: list[str] | None = Field(
        default=None, description="one label per box, if the task has labels"
    )
    points: list[tuple[Finite, Finite]] | None = Field(
        default=None,
        description="one [x, y] point per box in original-image pixels (VisionReasoner), if any",
    )

    @model_validator(mode="after")
    def _labels_match(self) -> BoxSolution:
        if self.labels is not None and len(self.labels) != len(self.boxes):
            raise ValueError(
                f"labels: {len(self.labels)} labels for {len(self.boxes)} boxes; give one label per box or none"
            )
        if self.points is not None and len(self.points) != len(self.boxes):
            raise ValueError(
                f"points: {len(self.points)} points for {len(self.boxes)} boxes; give one point per box or none"
            )
        return self


class LabelSolution(BaseModel):
    """Ground truth of a classification task: a label and optional synonyms."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1)
    synonyms: list[str] = Field(default_factory=list)


Solution = BoxSolution | LabelSolution


class ComponentRef(BaseModel):
    """One reward component of a spec: a registered name, a weight and its parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str
    weight: Finite = Field(default=1.0, ge=0.0)
    params: dict[str, Any] = Field(default_factory=dict)


class AggregateRef(BaseModel):
    """How component values combine into one reward: a registered aggregator and its parameters."""

    model_config = ConfigDict(extra="forbid")

    method: str = "harmonic"
    params: dict[str, Any] = Field(default_factory=dict)


class RewardSpec(BaseModel):
    """A reward = components + aggregation. Presets are named specs (``GET /v1/rewards``)."""

    model_config = ConfigDict(extra="forbid")

    components: list[ComponentRef] = Field(min_length=1)
    aggregate: AggregateRef = Field(default_factory=AggregateRef)


RewardRef = str | RewardSpec
"""A preset name (``"dig"``) or a full spec."""


class PatchMask(BaseModel):
    """DEVA image mask over the vision-encoder patch grid (rows × cols).

    Either 0/1 values, or scores with ``threshold`` (a patch is kept when score >= threshold).
    """

    model_config = ConfigDict(extra="forbid")

    grid: list[list[Finite]] = Field(min_length=1)
    threshold: Finite | None = None

    @model_validator(mode="after")
    def _rectangular(self) -> PatchMask:
        widths = {len(row) for row in self.grid}
        if len(widths) != 1 or 0 in widths:
            raise ValueError("grid: every row must have the same, non-zero number of cells")
        return self


class Sample(BaseModel):
    """One completion to score against its solution."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=256)
    completion: str
    solution: Solution
    frame: Frame = Field(default_factory=Frame)
    image: str | None = Field(
        default=None, description="base64 PNG/JPEG or a path under the data root"
    )
    query: str | None = None
    mask: PatchMask | None = Field(default=None, description="DEVA alignment mask of the image")
    mask_boxes: list[Box] | None = Field(
        default=None, description="alternative mask: keep these pixel boxes"
    )


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reward: RewardRef
    samples: list[Sample]


class ErrorInfo(BaseModel):
    """A per-sample (or per-component) failure, reported as data next to its 0 reward."""

    code: str
    message: str


class SampleResult(BaseModel):
    id: str
    reward: float
    components: dict[str, float]
    error: ErrorInfo | None = None
    component_errors: dict[str, ErrorInfo] = Field(
        default_factory=dict,
        description="components that could not be computed (e.g. a dependency down)",
    )


class ScoreResponse(BaseModel):
    results: list[SampleResult]
    reward: RewardSpec


class Group(BaseModel):
    """A GRPO group: G completions of one prompt, sharing its solution."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=256)
    solution: Solution
    frame: Frame = Field(default_factory=Frame)
    image: str | None = None
    query: str | None = None
    mask: PatchMask | None = None
    mask_boxes: list[Box] | None = None
    completions: list[str] = Field(min_length=1)


class GroupsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reward: RewardRef
    advantage: str = "grpo"
    advantage_params: dict[str, Any] = Field(default_factory=dict)
    groups: list[Group]


class GroupResult(BaseModel):
    id: str
    rewards: list[float]
    advantages: list[float]
    components: dict[str, list[float]]
    errors: list[ErrorInfo | None]
    component_errors: dict[str, list[ErrorInfo | None]] = Field(
        default_factory=dict,
        description="per component that failed for some completion: one entry per completion",
    )
    std: float = Field(description="sample std (ddof=1) of the group's rewards")
    zero_variance: bool


class BatchStats(BaseModel):
    n_groups: int
    n_completions: int
    reward_mean: float
    reward_std: float
    mean_group_std: float
    zero_variance_fraction: float
    error_fraction: float


class GroupsResponse(BaseModel):
    groups: list[GroupResult]
    stats: BatchStats
    reward: RewardSpec


class ComponentInfo(BaseModel):
    """One registered reward component as listed by ``GET /v1/rewards``."""

    name: str
    kind: str = Field(description="'sample' (sync, per completion) or 'batch' (async, per request)")
    needs: str = Field(description="the solution it needs: 'boxes', 'label' or 'any'")
    range: tuple[float, float] = Field(description="[lo, hi] with default parameters")
    description: str
    params: dict[str, Any] = Field(description="JSON Schema of the parameters")


class AggregatorInfo(BaseModel):
    name: str
    description: str
    params: dict[str, Any]


class PresetInfo(BaseModel):
    name: str
    reproduces: str
    deviations: str
    spec: RewardSpec


class RewardsCatalog(BaseModel):
    """``GET /v1/rewards``: everything a reward spec may name."""

    components: list[ComponentInfo]
    aggregators: list[AggregatorInfo]
    advantages: list[AggregatorInfo]
    presets: list[PresetInfo]


class AggregateRequest(BaseModel):
    """``POST /v1/aggregate``: combine given component values with a spec's aggregation.

    A component of the spec absent from a row is treated as missing (left out, as when a
    component fails); a name not in the spec is an error.
    """

    model_config = ConfigDict(extra="forbid")

    reward: RewardRef
    values: list[dict[str, Finite]]


class AggregateResponse(BaseModel):
    rewards: list[float]
    errors: list[ErrorInfo | None]
    reward: RewardSpec


class OpenRLHFRequest(BaseModel):
    """OpenRLHF's remote reward-model protocol (``--remote_rm_url``).

    ``query[i]`` is prompt + response as decoded by OpenRLHF; ``labels[i]`` is the dataset's
    label column as OpenRLHF passes it: a JSON object, its JSON text, or ``""`` / null when
    missing (see the ``/get_reward`` route for its format; a bad label is per-sample data).
    """

    query: list[str] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    labels: list[Any] = Field(default_factory=list)


class OpenRLHFResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]]
