"""OpenRLHF remote reward protocol (``POST /get_reward``): pure helpers.

OpenRLHF (``--remote_rm_url``) posts ``{"query": [...], "prompts": [...], "labels": [...]}``
where ``query[i]`` = prompt + response and ``labels[i]`` is the dataset's label column. We
expect each label to be a JSON string, either a bare solution

    {"boxes": [[x1, y1, x2, y2], ...], "labels": [...]?}   or   {"label": "...", "synonyms": [...]?}

or an object ``{"solution": <solution>, "frame": <frame>?, "reward": <preset name or spec>?}``
(default reward: ``PRL_REWARD_OPENRLHF_REWARD``; default frame: pixel).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.geometry import Frame
from schemas.reward import (
    OpenRLHFRequest,
    OpenRLHFResponse,
    RewardRef,
    Sample,
    SampleResult,
    Solution,
)
from services.reward.limits import check_samples
from services.reward.scoring import ScoringContext, ascore_samples
from services.reward.scoring.spec import SpecError, compiled
from services.reward.settings import RewardSettings

END_TOKENS = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>", "<|end_of_text|>")


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")

    solution: Solution
    frame: Frame = Field(default_factory=Frame)
    reward: RewardRef | None = None


class LabelError(ValueError):
    """A label that is not the documented JSON (HTTP 422, message names ``labels[i]``)."""


def response_of(query: str, prompt: str) -> str:
    """The response part of ``query``: what follows ``prompt`` (prefix, else its last
    occurrence, else the whole query), without trailing end-of-sequence tokens."""
    if prompt and query.startswith(prompt):
        text = query[len(prompt) :]
    elif prompt and (at := query.rfind(prompt)) >= 0:
        text = query[at + len(prompt) :]
    else:
        text = query
    text = text.rstrip()
    stripped = True
    while stripped:
        stripped = False
        for tok in END_TOKENS:
            if text.endswith(tok):
                text = text[: -len(tok)].rstrip()
                stripped = True
    return text


def parse_label(raw: str, i: int) -> Label:
    """Decode ``labels[i]`` (bare solution or ``{"solution", "frame"?, "reward"?}``)."""
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LabelError(f"labels[{i}]: not JSON ({exc}); see /get_reward's label format") from None
    if isinstance(data, dict) and "solution" not in data:
        data = {"solution": data}
    try:
        return Label.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise LabelError(f"labels[{i}].{loc}: {first['msg']}") from None


async def score(
    req: OpenRLHFRequest, s: RewardSettings, context: ScoringContext | None = None
) -> list[SampleResult]:
    """Score an OpenRLHF batch, one ``ascore_samples`` call per distinct reward."""
    n = len(req.query)
    if len(req.prompts) != n or len(req.labels) != n:
        raise SpecError(
            f"query, prompts and labels must have the same length (got {n}, "
            f"{len(req.prompts)}, {len(req.labels)})"
        )
    by_reward: dict[str, list[tuple[int, Sample]]] = defaultdict(list)
    refs = {}
    for i, (q, p, raw) in enumerate(zip(req.query, req.prompts, req.labels, strict=True)):
        label = parse_label(raw, i)
        ref = label.reward if label.reward is not None else s.openrlhf_reward
        key = ref if isinstance(ref, str) else ref.model_dump_json()
        if key not in refs and label.reward is not None:
            try:  # memoised: scoring below reuses the compiled spec
                compiled(label.reward)
            except SpecError as exc:
                raise SpecError(f"labels[{i}].{exc}") from None
        refs[key] = ref
        sample = Sample(
            id=str(i),
            completion=response_of(q, p),
            solution=label.solution,
            frame=label.frame,
        )
        by_reward[key].append((i, sample))
    samples = [smp for group in by_reward.values() for _, smp in group]
    check_samples(samples, s)
    out: list[SampleResult | None] = [None] * n
    for key, group in by_reward.items():
        got = await ascore_samples(
            [smp for _, smp in group], refs[key], context, max_boxes=s.max_boxes
        )
        for (i, _), r in zip(group, got, strict=True):
            out[i] = r
    return out  # type: ignore[return-value]


def response(results: list[SampleResult]) -> OpenRLHFResponse:
    """``rewards`` = ``scores`` = the aggregated rewards; ``extra_logs``: component name → one
    value per sample (0.0 where a sample's reward has no such component)."""
    rewards = [r.reward for r in results]
    logs: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(results))
    for i, r in enumerate(results):
        for name, v in r.components.items():
            logs[name][i] = v
    return OpenRLHFResponse(rewards=rewards, scores=rewards, extra_logs=dict(logs))
