"""Plug-in kinds of the scoring library and their registries.

Four registries (``services.common.registry.Registry``):

* ``components``: reward components. Two kinds share the registry:
  - *sample* components, sync pure functions ``score(sample: Prepared, params) -> float``,
    optionally with a batched form ``score_many(samples, params) -> list[float]`` that the
    pipeline calls once per request (bit-identical values; ``f1``/``miou`` use it);
  - *batch* components, ``async score_batch(samples: list[Prepared], params, context)
    -> list[float | ErrorInfo]``, called once per request for every sample that parsed
    (e.g. DEVA ``alignment``, which calls the embedding service over HTTP). An ``ErrorInfo``
    marks that one sample's value as missing (see ``pipeline`` for how the aggregate treats
    it). A batch component may also give ``ready(context) -> str | None`` — a dependency
    check that the service adds to ``/readyz``.
* ``aggregators``: ``(raw, scaled, weights) -> reward`` over a batch, shapes ``(S, K)``.
* ``advantages``: group reward arrays → group advantage arrays.
* ``presets``: named :class:`~schemas.reward.RewardSpec`.

Every component declares ``bounds(params) -> (lo, hi)``; aggregators that need [0, 1] inputs
get ``r̂ = clip((r − lo) / (hi − lo), 0, 1)``. A component whose scale differs from the values
it can take (DEVA ``alignment``: its floor is mapped to a stated credit, not to 0) also
declares ``attainable(params) -> (lo, hi)``, the interval its values really lie in; otherwise
the two coincide (:meth:`Component.value_range`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from schemas.geometry import Frame
from schemas.reward import BoxSolution, ErrorInfo, Group, Sample, Solution
from services.common.registry import Registry
from services.reward.scoring.geometry import canonical, clip_size, clip_to_image, to_pixels
from services.reward.scoring.parse import Answer, BoxAnswer

Needs = Literal["boxes", "label", "any"]


class NoParams(BaseModel):
    """A component/aggregator without parameters (unknown keys are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class ScoringContext:
    """What batch components may use: service settings, a shared HTTP client, anything else.

    In-process callers can pass None everywhere; the reward service fills ``settings`` with
    its ``RewardSettings`` and ``http`` with an ``httpx.AsyncClient`` it closes on shutdown.
    """

    settings: Any = None
    http: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Truth:
    """A solution prepared once and shared by every completion scored against it.

    ``boxes: (M, 4)`` pixel GT (box tasks), ``labels`` the GT labels or None.
    """

    solution: Solution
    frame: Frame
    boxes: np.ndarray | None = None
    labels: list[str] | None = None

    @classmethod
    def of(cls, solution: Solution, frame: Frame) -> Truth:
        if isinstance(solution, BoxSolution):
            boxes = np.array(solution.boxes, dtype=np.float64).reshape(-1, 4)
            return cls(solution, frame, boxes, solution.labels)
        return cls(solution, frame)


@dataclass(slots=True)
class Prepared:
    """One completion with its parsed answer and its truth, plus a per-sample cache that lets
    components share work (``f1`` and ``miou`` share one Hungarian matching)."""

    id: str
    completion: str
    truth: Truth
    answer: Answer
    source: Sample | Group | None = None
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def pred(self) -> np.ndarray:
        """Predicted boxes ``(N, 4)`` in original-image pixels, clipped to the image (when its
        size is known), inverted ones canonicalised."""
        got = self.cache.get("pred")
        if got is None:
            ans = self.answer
            assert isinstance(ans, BoxAnswer)
            got = clip_to_image(
                np.array(to_pixels(ans.boxes, self.truth.frame)), clip_size(self.truth.frame)
            )
            if ans.inverted:
                got = canonical(got)
            self.cache["pred"] = got
        return got


SampleScore = Callable[[Prepared, Any], float]
BatchScore = Callable[[list[Prepared], Any, ScoringContext], Awaitable[list[float | ErrorInfo]]]
ReadyFn = Callable[[ScoringContext], Awaitable[str | None]]


@dataclass(frozen=True)
class Component:
    """A registered reward component. Exactly one of ``score`` / ``score_batch`` is set."""

    name: str
    description: str
    needs: Needs
    params: type[BaseModel]
    bounds: Callable[[Any], tuple[float, float]]
    score: SampleScore | None = None
    score_batch: BatchScore | None = None
    ready: ReadyFn | None = None
    score_many: Callable[[list[Prepared], Any], list[float]] | None = None
    """Optional batched form of ``score`` over the parsed samples of a request (same values,
    bit for bit); the pipeline falls back to ``score`` per sample if it raises."""
    parse: frozenset[str] = frozenset()
    """Peer answer dialects this component needs (``parse.PARSE_OPTIONS``); a spec parses
    with the union of its components' options."""
    attainable: Callable[[Any], tuple[float, float]] | None = None

    def value_range(self, params: Any) -> tuple[float, float]:
        """The interval the component's values lie in (``attainable``, else ``bounds``)."""
        return (self.attainable or self.bounds)(params)

    @property
    def kind(self) -> Literal["sample", "batch"]:
        return "batch" if self.score_batch is not None else "sample"


@dataclass(frozen=True)
class Aggregator:
    """``fn(raw: (S, K), scaled: (S, K), weights: (S, K), params) -> (S,)``.

    A missing value (component error) has weight 0 in its row; its raw/scaled entry is 0.
    """

    name: str
    description: str
    params: type[BaseModel]
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray, Any], np.ndarray]
    check: Callable[[Any, list[str], list[float]], str | None] | None = None
    """Optional spec check ``(params, component names, weights) -> problem or None``, run when
    a spec is compiled (a learned aggregator's inputs must be the spec's components)."""


@dataclass(frozen=True)
class Estimator:
    """``fn(groups: list[(G_i,) rewards], params) -> list[(G_i,) advantages]``."""

    name: str
    description: str
    params: type[BaseModel]
    fn: Callable[[list[np.ndarray], Any], list[np.ndarray]]


@dataclass(frozen=True)
class Preset:
    """A named spec; ``reproduces`` names the peer behaviour, ``deviations`` the bugs not kept."""

    name: str
    spec: Any  # schemas.reward.RewardSpec
    reproduces: str
    deviations: str = ""


_PKG = "services.reward.scoring"
components: Registry[Component] = Registry(
    "reward component", builtins=(f"{_PKG}.components", f"{_PKG}.peers", f"{_PKG}.alignment")
)
aggregators: Registry[Aggregator] = Registry(
    "aggregator", builtins=(f"{_PKG}.aggregate", f"{_PKG}.learned")
)
advantages: Registry[Estimator] = Registry("advantage estimator", builtins=(f"{_PKG}.advantages",))
presets: Registry[Preset] = Registry("reward preset", builtins=(f"{_PKG}.presets",))


def _doc(fn: Callable[..., Any]) -> str:
    return (fn.__doc__ or "").strip()


def sample_component(
    name: str,
    *,
    needs: Needs,
    bounds: Callable[[Any], tuple[float, float]] | tuple[float, float],
    params: type[BaseModel] = NoParams,
    parse: frozenset[str] = frozenset(),
    many: Callable[[list[Prepared], Any], list[float]] | None = None,
) -> Callable[[SampleScore], SampleScore]:
    """Decorator registering a sync per-sample component ``fn(sample, params) -> float``
    (``parse``: the peer answer dialects it needs, see :attr:`Component.parse`; ``many``:
    its batched form, see :attr:`Component.score_many`)."""

    def add(fn: SampleScore) -> SampleScore:
        b = bounds if callable(bounds) else (lambda _p, _b=bounds: _b)
        components.register(name)(
            Component(name, _doc(fn), needs, params, b, score=fn, score_many=many, parse=parse)
        )
        return fn

    return add


def batch_component(
    name: str,
    *,
    needs: Needs,
    bounds: Callable[[Any], tuple[float, float]] | tuple[float, float],
    params: type[BaseModel] = NoParams,
    ready: ReadyFn | None = None,
    attainable: Callable[[Any], tuple[float, float]] | None = None,
) -> Callable[[BatchScore], BatchScore]:
    """Decorator registering an async batch component
    ``async fn(samples, params, context) -> list[float | ErrorInfo]`` (one call per request)."""

    def add(fn: BatchScore) -> BatchScore:
        b = bounds if callable(bounds) else (lambda _p, _b=bounds: _b)
        components.register(name)(
            Component(
                name, _doc(fn), needs, params, b, score_batch=fn, ready=ready, attainable=attainable
            )
        )
        return fn

    return add
