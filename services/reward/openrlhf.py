"""OpenRLHF remote reward protocol (``POST /get_reward``): pure helpers.

OpenRLHF 0.11 (``SingleTurnAgentExecutor``, ``--reward.remote_url``; ``--remote_rm_url`` up to
0.10) posts ``{"query": [...], "prompts": [...], "labels": [...]}``, one sample per request:
``query[i]`` is prompt + response decoded with special tokens kept, ``labels[i]`` the dataset's
``--data.label_key`` value passed through as it is — a JSON object for a nested JSONL field, a
string for a string field, ``""`` when the key is missing. A label is, as an object or as its
JSON text, either a bare solution

    {"boxes": [[x1, y1, x2, y2], ...], "labels": [...]?}   or   {"label": "...", "synonyms": [...]?}

or an envelope ``{"solution": <solution>, "frame": <frame>?, "reward": <preset name or spec>?}``
(default reward: ``PRL_REWARD_OPENRLHF_REWARD``; default frame: pixel).

OpenRLHF retries a non-200 answer five times, then leaves the sample's reward ``None``, which
later crashes its batch concatenation; and it concatenates ``extra_logs`` over samples of
different requests, so their keys must agree. Hence: a bad label (not JSON, not a solution,
an unknown reward, empty) is per-sample data — reward ``PRL_REWARD_OPENRLHF_INVALID_LABEL_REWARD``
(0) and ``extra_logs["prl_error"] = 1`` — never a 4xx; and ``extra_logs`` always has the same
keys: every registered component (0.0 where the sample's reward lacks it) and ``prl_error``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clients.adapters.openrlhf import split_response
from schemas.geometry import Frame
from schemas.reward import (
    ErrorInfo,
    OpenRLHFRequest,
    OpenRLHFResponse,
    RewardRef,
    Sample,
    SampleResult,
    Solution,
)
from services.reward.limits import check_samples
from services.reward.scoring import ScoringContext, ascore_samples, components
from services.reward.scoring.spec import SpecError, compiled
from services.reward.settings import RewardSettings

log = logging.getLogger(__name__)

__all__ = ["LabelError", "log_keys", "parse_label", "response", "score", "split_response"]


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")

    solution: Solution
    frame: Frame = Field(default_factory=Frame)
    reward: RewardRef | None = None


class LabelError(ValueError):
    """A label that is not the documented format; the message names ``labels[i]``."""


def parse_label(raw: Any, i: int) -> Label:
    """Decode ``labels[i]``: an object or its JSON text, bare solution or envelope."""
    data = raw
    if isinstance(raw, str | bytes):
        if not raw.strip():
            raise LabelError(f"labels[{i}]: empty (is --data.label_key set?)")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise LabelError(f"labels[{i}]: not JSON ({exc})") from None
    if data is None:
        raise LabelError(f"labels[{i}]: missing (is --data.label_key set?)")
    if isinstance(data, dict) and "solution" not in data:
        data = {"solution": data}
    try:
        return Label.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise LabelError(f"labels[{i}].{loc}: {first['msg']}") from None


def _invalid(i: int, message: str, s: RewardSettings) -> SampleResult:
    log.warning(
        "/get_reward: %s (the sample gets reward %s)", message, s.openrlhf_invalid_label_reward
    )
    return SampleResult(
        id=str(i),
        reward=s.openrlhf_invalid_label_reward,
        components={},
        error=ErrorInfo(code="invalid_label", message=message),
    )


async def score(
    req: OpenRLHFRequest, s: RewardSettings, context: ScoringContext | None = None
) -> list[SampleResult]:
    """Score an OpenRLHF batch, one ``ascore_samples`` call per distinct reward.

    Mismatched list lengths are a protocol error (``SpecError`` → 422); everything about one
    sample (its label, its reward name) is that sample's result.
    """
    n = len(req.query)
    if len(req.prompts) != n or len(req.labels) != n:
        raise SpecError(
            f"query, prompts and labels must have the same length (got {n}, "
            f"{len(req.prompts)}, {len(req.labels)})"
        )
    out: list[SampleResult | None] = [None] * n
    by_reward: dict[str, list[tuple[int, Sample]]] = {}
    refs: dict[str, RewardRef] = {}
    bad_refs: dict[str, str] = {}  # reward key → why its spec does not compile
    for i, (q, p, raw) in enumerate(zip(req.query, req.prompts, req.labels, strict=True)):
        try:
            label = parse_label(raw, i)
        except LabelError as exc:
            out[i] = _invalid(i, str(exc), s)
            continue
        ref = label.reward if label.reward is not None else s.openrlhf_reward
        key = ref if isinstance(ref, str) else ref.model_dump_json()
        if key not in refs and key not in bad_refs and label.reward is not None:
            try:  # memoised: scoring below reuses the compiled spec
                compiled(label.reward)
            except SpecError as exc:
                bad_refs[key] = str(exc)
        if key in bad_refs:
            out[i] = _invalid(i, f"labels[{i}].reward: {bad_refs[key]}", s)
            continue
        refs[key] = ref
        sample = Sample(
            id=str(i), completion=split_response(q, p), solution=label.solution, frame=label.frame
        )
        by_reward.setdefault(key, []).append((i, sample))
    check_samples([smp for group in by_reward.values() for _, smp in group], s)
    for key, group in by_reward.items():
        try:
            got = await ascore_samples(
                [smp for _, smp in group], refs[key], context, max_boxes=s.max_boxes
            )
        except SpecError as exc:
            for i, _ in group:
                out[i] = _invalid(i, f"labels[{i}].reward: {exc}", s)
            continue
        for (i, _), r in zip(group, got, strict=True):
            out[i] = r
    return out  # type: ignore[return-value]


def log_keys() -> list[str]:
    """The ``extra_logs`` keys of every answer: each registered component, then ``prl_error``."""
    return [*sorted(components.names()), "prl_error"]


def response(results: list[SampleResult]) -> OpenRLHFResponse:
    """``rewards`` = ``scores`` = the aggregated rewards; ``extra_logs``: :func:`log_keys` →
    one value per sample (0.0 where a sample's reward has no such component)."""
    rewards = [r.reward for r in results]
    keys = log_keys()
    logs = {k: [float(r.components.get(k, 0.0)) for r in results] for k in keys[:-1]}
    logs["prl_error"] = [float(r.error is not None) for r in results]
    return OpenRLHFResponse(rewards=rewards, scores=rewards, extra_logs=logs)
