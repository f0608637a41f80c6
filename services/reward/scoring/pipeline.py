"""Scoring pipeline: prepare (parse once) → sample components → batch components →
aggregate → (groups) advantages.

Failures are data, never exceptions:

* the answer does not parse → reward 0, ``error`` = the parse error, every sample component
  reported at its range minimum, batch components not called for it;
* a component fails for one sample (a batch component returns an ``ErrorInfo``, or a
  component raises) → that value is *missing*: ``component_errors[name]`` says why, the
  component is absent from ``components``, and the reward is aggregated over the components
  that were computed (their weights renormalise; for ``sum`` the missing term is dropped).
  A missing value is never counted as a real 0, which would penalise the sample for an outage
  of a dependency. When no weighted component is left the reward is 0 with error
  ``no_components``.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from schemas.reward import (
    BatchStats,
    BoxSolution,
    ErrorInfo,
    Group,
    GroupResult,
    GroupsRequest,
    GroupsResponse,
    RewardRef,
    Sample,
    SampleResult,
)
from services.reward.scoring.advantages import sample_std
from services.reward.scoring.aggregate import scale
from services.reward.scoring.base import Component, Estimator, Prepared, ScoringContext, Truth
from services.reward.scoring.components import MatchParams
from services.reward.scoring.geometry import CLIP_MARGIN, frame_extent
from services.reward.scoring.pairs import precompute
from services.reward.scoring.parse import (
    Answer,
    BoxAnswer,
    ParseError,
    parse_boxes,
    parse_boxes_many,
    parse_label,
)
from services.reward.scoring.spec import (
    CompiledSpec,
    SpecError,
    check_solutions,
    compiled,
    resolve_estimator,
)

log = logging.getLogger(__name__)

FRAME_TOLERANCE = CLIP_MARGIN
"""A coordinate may exceed its frame's range by this fraction of the range before
``bad_frame``; within it the box is clipped to the image (``geometry.CLIP_MARGIN``)."""

DEFAULT_MAX_BOXES = 1000
T = TypeVar("T")
OFFLOAD_MIN_ITEMS = 128
"""Requests with at least this many completions are parsed and scored in a worker thread, so
the event loop keeps answering probes and other requests while a large batch is scored (the
interpreter switches threads every few milliseconds); smaller ones stay inline (no hop)."""


async def offload(n_items: int, fn: Callable[..., T], *args: object) -> T:
    """Run the CPU-bound ``fn(*args)`` in a thread when the batch is large, else inline;
    either way with the cyclic garbage collector paused (:func:`gc_paused`)."""
    if n_items >= OFFLOAD_MIN_ITEMS:
        return await asyncio.to_thread(_without_gc, fn, *args)
    return _without_gc(fn, *args)


def _without_gc(fn: Callable[..., T], *args: object) -> T:
    with gc_paused():
        return fn(*args)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch is parsed and scored.

    Scoring 512 completions allocates ~50 000 short-lived containers (the answers' JSON
    items, box lists, matrices), none of them in a reference cycle: reference counting frees
    them all. Their allocation count still triggers collector passes, full ones included,
    which walk every object of the process and find nothing; in the throughput benchmark
    they cost ~25 % of the mean CPU time. The collector is re-enabled on exit (if this call
    disabled it; a nested or concurrent pause leaves it to the outermost one), and anything
    cyclic made meanwhile is collected by its next pass.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(frozen=True)
class Scored:
    """Raw scoring output: ``values: (S, K)``, ``present: (S, K)`` bool, ``rewards: (S,)``."""

    values: np.ndarray
    present: np.ndarray
    rewards: np.ndarray
    errors: list[ErrorInfo | None]
    component_errors: list[dict[str, ErrorInfo]]


def check_frame(answer: BoxAnswer, truth: Truth) -> ParseError | None:
    """``bad_frame`` when a coordinate lies outside the frame's range by more than 10 % of
    the range (x ∉ [−0.1·w, 1.1·w] or y ∉ [−0.1·h, 1.1·h]); within that margin the box is
    scored clipped to the image.

    The frame is never guessed; numbers far outside it (e.g. pixels under ``norm1000``) mean
    the completion does not use the declared frame.
    """
    extent = frame_extent(truth.frame)
    if extent is None or not answer.rows:
        return None
    w, h = extent
    flat = answer.flat
    xs, ys = flat[0::2], flat[1::2]  # x1, y1, x2, y2 repeated: even = x, odd = y
    tx, ty = FRAME_TOLERANCE * w, FRAME_TOLERANCE * h
    if min(xs) < -tx or max(xs) > w + tx or min(ys) < -ty or max(ys) > h + ty:
        return ParseError(
            "bad_frame",
            f"coordinates outside the {truth.frame.coords!r} frame (x in [0, {w:g}], "
            f"y in [0, {h:g}]): the completion's numbers do not fit the declared frame",
        )
    return None


def check_frames(answers: list[BoxAnswer | ParseError], truth: Truth) -> list[Answer]:
    """:func:`check_frame` of answers sharing one frame: one min/max over all of them, and
    answer by answer only when that finds a coordinate out of range."""
    extent = frame_extent(truth.frame)
    boxes = [a for a in answers if isinstance(a, BoxAnswer) and a.rows]
    if extent is None or not boxes:
        return answers  # type: ignore[return-value]
    w, h = extent
    arr = np.concatenate([a.boxes for a in boxes])
    xs, ys = arr[:, 0::2], arr[:, 1::2]
    tx, ty = FRAME_TOLERANCE * w, FRAME_TOLERANCE * h
    if xs.min() >= -tx and xs.max() <= w + tx and ys.min() >= -ty and ys.max() <= h + ty:
        return answers  # type: ignore[return-value]
    return [(check_frame(a, truth) or a) if isinstance(a, BoxAnswer) else a for a in answers]


def prepare(
    sid: str,
    completion: str,
    truth: Truth,
    source: Sample | Group | None = None,
    max_boxes: int = DEFAULT_MAX_BOXES,
    options: frozenset[str] = frozenset(),
) -> Prepared:
    """Parse ``completion`` once, in the dialect of its solution (boxes or a label), with the
    spec's peer dialect ``options`` (``parse.PARSE_OPTIONS``)."""
    if isinstance(truth.solution, BoxSolution):
        answer = parse_boxes(completion, max_boxes, options)
        if isinstance(answer, BoxAnswer):
            answer = check_frame(answer, truth) or answer
    else:
        answer = parse_label(completion, options)
    return Prepared(sid, completion, truth, answer, source)


BATCH_GEOMETRY_MIN = 4
"""Below this many samples the per-sample geometry is cheaper than the bucketed batch one."""


def _precompute(items: Sequence[Prepared], c: CompiledSpec) -> None:
    """Batch geometry for box components, with the Hungarian costs their params need."""
    if len(items) < BATCH_GEOMETRY_MIN:
        return
    if any(comp.needs == "boxes" for comp, _ in c.components):
        weights = {
            (p.l1_weight, p.giou_weight) for _, p in c.components if isinstance(p, MatchParams)
        }
        precompute(items, weights)


def _sync_values(items: Sequence[Prepared], c: CompiledSpec) -> Scored:
    s = len(items)
    lo = c.lo.tolist()
    sync = [(j, comp, params) for j, (comp, params) in enumerate(c.components) if comp.score]
    each = [(j, comp, params) for j, comp, params in sync if comp.score_many is None]
    many = [(j, comp, params) for j, comp, params in sync if comp.score_many is not None]
    values: list[list[float]] = []
    present: list[list[bool]] = []
    errors: list[ErrorInfo | None] = [None] * s
    comp_errors: list[dict[str, ErrorInfo]] = [{} for _ in range(s)]
    ok: list[int] = []
    for i, item in enumerate(items):
        row, got = lo[:], [False] * len(lo)
        values.append(row)
        present.append(got)
        ans = item.answer
        if isinstance(ans, ParseError):
            errors[i] = ErrorInfo(code=ans.code, message=ans.message)
            continue
        ok.append(i)
        for j, comp, params in each:
            _one(item, j, comp, params, row, got, comp_errors[i])
    parsed = [items[i] for i in ok]
    for j, comp, params in many:
        try:
            got_many = comp.score_many(parsed, params)  # type: ignore[misc]
        except Exception:  # one bad sample must not fail the batch: score them one by one
            log.exception("component %s failed on the batch; scoring one by one", comp.name)
            for i in ok:
                _one(items[i], j, comp, params, values[i], present[i], comp_errors[i])
            continue
        for i, v in zip(ok, got_many, strict=True):
            if not math.isfinite(v):
                comp_errors[i][comp.name] = _non_finite(comp.name, v)
                continue
            values[i][j] = v
            present[i][j] = True
    k = len(lo)
    return Scored(
        np.array(values, dtype=np.float64).reshape(s, k),
        np.array(present, dtype=bool).reshape(s, k),
        np.zeros(s),
        errors,
        comp_errors,
    )


def _one(
    item: Prepared,
    j: int,
    comp: Component,
    params: object,
    row: list[float],
    got: list[bool],
    errors: dict[str, ErrorInfo],
) -> None:
    """Score one sample with one component; a failure is recorded, never raised."""
    try:
        value = comp.score(item, params)  # type: ignore[misc]
        if not math.isfinite(value):
            errors[comp.name] = _non_finite(comp.name, value)
            return
        row[j] = value
        got[j] = True
    except Exception as exc:  # a bug in one component must not fail the batch
        log.exception("component %s failed", comp.name)
        errors[comp.name] = ErrorInfo(
            code="component_failed", message=f"{type(exc).__name__}: {exc}"
        )


def _non_finite(name: str, value: float) -> ErrorInfo:
    """A component value that overflowed (or is NaN): that sample's value is missing."""
    return ErrorInfo(code="non_finite", message=f"component {name} gave {value} (overflow)")


async def _batch_values(
    items: Sequence[Prepared], c: CompiledSpec, out: Scored, context: ScoringContext
) -> None:
    ok = [i for i, e in enumerate(out.errors) if e is None]
    if not ok:
        return
    for j, (comp, params) in enumerate(c.components):
        if comp.score_batch is None:
            continue
        try:
            got = await comp.score_batch([items[i] for i in ok], params, context)
            if len(got) != len(ok):
                raise RuntimeError(f"returned {len(got)} values for {len(ok)} samples")
        except Exception as exc:
            log.exception("batch component %s failed", comp.name)
            err = ErrorInfo(code="component_failed", message=f"{type(exc).__name__}: {exc}")
            got = [err] * len(ok)
        for i, v in zip(ok, got, strict=True):
            if isinstance(v, ErrorInfo):
                out.component_errors[i][comp.name] = v
            elif not math.isfinite(v):
                out.component_errors[i][comp.name] = _non_finite(comp.name, v)
            else:
                out.values[i, j] = v
                out.present[i, j] = True


def _aggregate(c: CompiledSpec, out: Scored) -> Scored:
    w = c.weights * out.present
    raw = np.where(out.present, out.values, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rewards = c.aggregator.fn(raw, scale(raw, c.lo, c.hi), w, c.aggregate_params).astype(
            np.float64
        )
    weighted = w.any(axis=1).tolist()
    finite = np.isfinite(rewards).tolist()
    for i, err in enumerate(out.errors):
        if err is not None:
            rewards[i] = 0.0
        elif not weighted[i]:
            rewards[i] = 0.0
            out.errors[i] = ErrorInfo(
                code="no_components", message="no weighted component could be computed"
            )
        elif not finite[i]:
            rewards[i] = 0.0
            out.errors[i] = ErrorInfo(code="non_finite", message="the aggregate is not finite")
    return Scored(out.values, out.present, rewards, out.errors, out.component_errors)


def aggregate_values(
    c: CompiledSpec, values: np.ndarray, present: np.ndarray
) -> tuple[np.ndarray, list[ErrorInfo | None]]:
    """Aggregate given component values ``(S, K)`` (``present`` marks the given ones)."""
    s = values.shape[0]
    out = _aggregate(c, Scored(values, present, np.zeros(s), [None] * s, [{} for _ in range(s)]))
    return out.rewards, out.errors


def _results(items: Sequence[Prepared], c: CompiledSpec, out: Scored) -> list[SampleResult]:
    names = c.names
    res = []
    for i, item in enumerate(items):
        row, pres = out.values[i].tolist(), out.present[i].tolist()
        failed = isinstance(item.answer, ParseError)
        comps = {
            n: v
            for n, v, p, (comp, _) in zip(names, row, pres, c.components, strict=True)
            if p or (failed and comp.kind == "sample")
        }
        res.append(
            SampleResult.model_construct(
                id=item.id,
                reward=float(out.rewards[i]),
                components=comps,
                error=out.errors[i],
                component_errors=out.component_errors[i],
            )
        )
    return res


def _prepared_samples(
    samples: Sequence[Sample], max_boxes: int, options: frozenset[str] = frozenset()
) -> list[Prepared]:
    return [
        prepare(s.id, s.completion, Truth.of(s.solution, s.frame), s, max_boxes, options)
        for s in samples
    ]


def _prepared_groups(
    groups: Sequence[Group], max_boxes: int, options: frozenset[str] = frozenset()
) -> list[Prepared]:
    """Every completion of every group, parsed; box answers of the whole request in one
    :func:`parse_boxes_many` call, frame-checked group by group (:func:`check_frames`)."""
    truths = [Truth.of(g.solution, g.frame) for g in groups]
    texts = [t for g in groups if isinstance(g.solution, BoxSolution) for t in g.completions]
    parsed = iter(parse_boxes_many(texts, max_boxes, options))
    items: list[Prepared] = []
    for g, truth in zip(groups, truths, strict=True):
        if isinstance(g.solution, BoxSolution):
            answers = check_frames([next(parsed) for _ in g.completions], truth)
            items.extend(
                Prepared(f"{g.id}/{j}", text, truth, a, g)
                for j, (text, a) in enumerate(zip(g.completions, answers, strict=True))
            )
        else:
            items.extend(
                prepare(f"{g.id}/{j}", text, truth, g, max_boxes, options)
                for j, text in enumerate(g.completions)
            )
    return items


def _spec_for(samples: Sequence[Sample], spec: RewardRef) -> CompiledSpec:
    c = compiled(spec)
    check_solutions(c, [(f"samples[{i}].solution", s.solution) for i, s in enumerate(samples)])
    return c


def score_samples(
    samples: Sequence[Sample], spec: RewardRef, *, max_boxes: int = DEFAULT_MAX_BOXES
) -> list[SampleResult]:
    """Score samples with a spec (or preset name) that has no batch component (sync)."""
    c = _spec_for(samples, spec)
    if c.has_batch:
        raise SpecError("this spec has a batch component; use ascore_samples (async)")
    items = _prepared_samples(samples, max_boxes, c.parse_options)
    _precompute(items, c)
    return _results(items, c, _aggregate(c, _sync_values(items, c)))


async def ascore_prepared(
    items: Sequence[Prepared], c: CompiledSpec, context: ScoringContext | None = None
) -> Scored:
    """Score prepared samples with every kind of component (batch ones awaited)."""
    out = await offload(len(items), _sync_part, items, c)
    if c.has_batch:
        await _batch_values(items, c, out, context or ScoringContext())
    return _aggregate(c, out)


def _sync_part(items: Sequence[Prepared], c: CompiledSpec) -> Scored:
    _precompute(items, c)
    return _sync_values(items, c)


async def ascore_samples(
    samples: Sequence[Sample],
    spec: RewardRef,
    context: ScoringContext | None = None,
    *,
    max_boxes: int = DEFAULT_MAX_BOXES,
) -> list[SampleResult]:
    """Score samples with any spec; batch components get ``context`` (settings, HTTP client)."""
    c = _spec_for(samples, spec)
    with _paused_for(c):
        return await _ascore_samples(samples, c, context, max_boxes)


async def _ascore_samples(
    samples: Sequence[Sample], c: CompiledSpec, context: ScoringContext | None, max_boxes: int
) -> list[SampleResult]:
    items = await offload(len(samples), _prepared_samples, samples, max_boxes, c.parse_options)
    return _results(items, c, await ascore_prepared(items, c, context))


def _paused_for(c: CompiledSpec) -> AbstractContextManager[None]:
    """:func:`gc_paused` over a whole request whose spec is pure CPU work, so the request's
    objects are freed before the collector runs again; a spec with batch components (which
    await other services) pauses it only around its CPU-bound parts (:func:`offload`)."""
    return nullcontext() if c.has_batch else gc_paused()


def zero_variance(r: np.ndarray) -> bool:
    """True when every reward of the group is the same (GRPO's advantage is then 0)."""
    values = r.tolist()
    return not values or max(values) - min(values) <= 1e-12


async def ascore_groups(
    req: GroupsRequest,
    context: ScoringContext | None = None,
    *,
    max_boxes: int = DEFAULT_MAX_BOXES,
) -> GroupsResponse:
    """Score GRPO groups: per group rewards, advantages, components, errors, std, zero-variance
    flag; plus batch statistics. Missing component values are reported as the component's
    range minimum in ``components`` and named in ``component_errors``."""
    c = compiled(req.reward)
    check_solutions(c, [(f"groups[{i}].solution", g.solution) for i, g in enumerate(req.groups)])
    est, est_params = resolve_estimator(req.advantage, req.advantage_params)
    with _paused_for(c):
        return await _ascore_groups(req, c, est, est_params, context, max_boxes)


async def _ascore_groups(
    req: GroupsRequest,
    c: CompiledSpec,
    est: Estimator,
    est_params: object,
    context: ScoringContext | None,
    max_boxes: int,
) -> GroupsResponse:
    n = sum(len(g.completions) for g in req.groups)
    items = await offload(n, _prepared_groups, req.groups, max_boxes, c.parse_options)
    out = await ascore_prepared(items, c, context)
    values = np.where(out.present, out.values, c.lo)
    bounds = np.cumsum([0] + [len(g.completions) for g in req.groups])
    rewards = [out.rewards[a:b] for a, b in itertools.pairwise(bounds)]
    advs = est.fn(rewards, est_params)
    columns = values.T.tolist()  # one conversion; each group takes list slices
    any_errors = any(out.component_errors)
    groups = []
    for gi, g in enumerate(req.groups):
        a, b = int(bounds[gi]), int(bounds[gi + 1])
        r = rewards[gi]
        comp_errs: dict[str, list[ErrorInfo | None]] = {}
        for i in range(a, b) if any_errors else ():
            for name, err in out.component_errors[i].items():
                comp_errs.setdefault(name, [None] * (b - a))[i - a] = err
        groups.append(
            GroupResult.model_construct(
                id=g.id,
                rewards=r.tolist(),
                advantages=np.asarray(advs[gi], dtype=np.float64).tolist(),
                components={n: columns[j][a:b] for j, n in enumerate(c.names)},
                errors=out.errors[a:b],
                component_errors=comp_errs,
                std=sample_std(r),
                zero_variance=zero_variance(r),
            )
        )
    return GroupsResponse.model_construct(
        groups=groups, stats=batch_stats(groups, out.rewards, out.errors), reward=c.spec
    )


def batch_stats(
    groups: Sequence[GroupResult], rewards: np.ndarray, errors: Sequence[ErrorInfo | None]
) -> BatchStats:
    """Batch statistics: reward mean and sample std over all completions, mean within-group std
    (the quantity DEVA's diversity loss raises), fraction of zero-variance groups and of
    completions with an error."""
    n = int(rewards.size)
    return BatchStats.model_construct(
        n_groups=len(groups),
        n_completions=n,
        reward_mean=float(rewards.mean()) if n else 0.0,
        reward_std=sample_std(rewards),
        mean_group_std=float(np.mean([g.std for g in groups])) if groups else 0.0,
        zero_variance_fraction=(
            float(np.mean([g.zero_variance for g in groups])) if groups else 0.0
        ),
        error_fraction=(sum(e is not None for e in errors) / n) if n else 0.0,
    )
