"""TRL ``GRPOTrainer`` reward function backed by the reward service.

TRL (pinned 1.16) calls every reward function with keyword arguments only::

    await reward_func(prompts=prompts, completions=completions,
                      completion_ids=completion_ids, **reward_kwargs)

where ``reward_kwargs`` holds each dataset column of the batch (one entry per completion,
``image``/``images`` as PIL objects included), ``trainer_state``, ``log_extra(column,
values)`` and ``log_metric(name, value)`` (``GRPOTrainer._calculate_rewards``). It detects
async callables, class instances included, with ``trl.trainer.utils.is_async_callable`` and
names the function by ``__name__`` (``get_callable_name``). It returns one float per
completion; ``None`` → NaN = "this reward does not apply" (a row where every reward function
says None gets advantage 0).

Usage::

    reward = TRLRewardFunction("http://127.0.0.1:8001", reward="dig", fallback_reward=None)
    GRPOTrainer(model=..., reward_funcs=[reward], train_dataset=ds, ...)

Columns read from the dataset: ``solution`` (a solution or envelope, dict or JSON string;
None/empty → not applicable), ``frame`` (optional), ``query`` (optional; when missing or empty,
the user text of the prompt if ``query_from_prompt``), ``image`` (only with ``send_images``: PIL images are
sent as base64 PNG, strings as they are; or whatever an ``image_refs`` hook returns), ``mask``
(optional DEVA alignment patch mask), ``reward`` (optional per-row preset), ``id`` (the row id,
for the group statistics).

Logged: per-component columns ``prl_<name>`` and ``prl_fallback`` / ``prl_error`` in the
completions table (``log_extra``), and, under ``metric_prefix`` (``prl``) with
``log_metric``: ``mean`` (the batch reward mean), ``component/<name>`` (each component's mean
over the samples that have it), ``error_frac`` (samples with a parse/scoring error),
``component_error_frac/<name>`` (samples a component failed on, e.g. the embedding service
down — never averaged in as 0), ``fallback_fraction``, and ``group_std`` /
``zero_variance_frac`` (mean within-group sample std and the share of groups with none, over
groups of ≥ 2 completions of one row id: the quantity DEVA's diversity loss raises).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from statistics import fmean, stdev
from typing import Any

from clients.adapters.common import (
    Outcome,
    RemoteReward,
    Target,
    completion_text,
    prompt_query,
    read_target,
)
from schemas.reward import RewardRef


def encode_image(image: Any) -> str | None:
    """A string image reference as is; a PIL image as base64 PNG; None as None."""
    if image is None or isinstance(image, str):
        return image
    if isinstance(image, list | tuple):
        return encode_image(image[-1]) if image else None  # solution boxes refer to the last image
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def group_statistics(rewards: Sequence[float], groups: Sequence[Any]) -> dict[str, float]:
    """Mean within-group sample std and the fraction of groups with zero variance (n ≥ 2)."""
    by_group: dict[Any, list[float]] = defaultdict(list)
    for r, g in zip(rewards, groups, strict=True):
        by_group[g].append(r)
    stds = [stdev(v) for v in by_group.values() if len(v) >= 2]
    if not stds:
        return {}
    return {
        "group_std": fmean(stds),
        "zero_variance_frac": fmean(1.0 if s < 1e-12 else 0.0 for s in stds),
    }


def summarise(results: Sequence[Mapping[str, Any]], groups: Sequence[Any]) -> dict[str, float]:
    """Metrics of one scored batch of ``{"reward", "components", "error", "component_errors"?}``
    results: reward mean, component means, error fraction, failed-component fractions, group
    std (see the module docstring)."""
    rewards = [float(r["reward"]) for r in results]
    metrics = {"mean": fmean(rewards)} if rewards else {}
    comps: dict[str, list[float]] = defaultdict(list)
    for r in results:
        for name, value in r.get("components", {}).items():
            comps[name].append(float(value))
    metrics.update({f"component/{n}": fmean(v) for n, v in comps.items()})
    metrics["error_frac"] = (
        fmean(1.0 if r.get("error") else 0.0 for r in results) if results else 0.0
    )
    failed: dict[str, int] = defaultdict(int)
    for r in results:
        for name in r.get("component_errors") or {}:
            failed[name] += 1
    metrics.update({f"component_error_frac/{n}": c / len(results) for n, c in failed.items()})
    metrics.update(group_statistics(rewards, groups))
    return metrics


class TRLRewardFunction:
    """Async, picklable reward function for ``GRPOTrainer(reward_funcs=[...])``.

    ``fallback_reward`` defaults to None (TRL: "not applicable", the sample's reward is NaN and
    not counted) — set a number to score failed calls explicitly instead. Either way
    ``prl_fallback`` marks the sample in the completions table. ``strict=True`` raises the
    client's error instead (a training run that must not go on without its reward).

    ``image_refs(n, columns) -> list[str | None]``, when given, makes each sample's ``image``
    (e.g. a path under the embedding service's data root); ``transport_factory`` and
    ``backoff_s`` go to :class:`~clients.adapters.common.RemoteReward`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        reward: RewardRef | Mapping[str, Any] = "dig",
        name: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        fallback_reward: float | None = None,
        max_retries: int = 3,
        solution_column: str = "solution",
        frame_column: str = "frame",
        query_column: str = "query",
        image_column: str = "image",
        reward_column: str = "reward",
        query_from_prompt: bool = True,
        send_images: bool = False,
        chunk_size: int | None = None,
        mask_column: str | None = "mask",
        group_column: str = "id",
        image_refs: Callable[[int, Mapping[str, Any]], list[str | None]] | None = None,
        metric_prefix: str = "prl",
        strict: bool = False,
        backoff_s: float | None = None,
        transport_factory: Any = None,
    ) -> None:
        self.remote = RemoteReward(
            url,
            reward=reward,
            api_key=api_key,
            timeout_s=timeout_s,
            fallback_reward=fallback_reward,
            max_retries=max_retries,
            chunk_size=chunk_size,
            strict=strict,
            backoff_s=backoff_s,
            transport_factory=transport_factory,
        )
        self.mask_column, self.group_column = mask_column, group_column
        self.image_refs, self.metric_prefix = image_refs, metric_prefix
        self.__name__ = name or f"prl_{reward if isinstance(reward, str) else 'reward'}"
        self.solution_column, self.frame_column = solution_column, frame_column
        self.query_column, self.image_column = query_column, image_column
        self.reward_column = reward_column
        self.query_from_prompt, self.send_images = query_from_prompt, send_images

    def __repr__(self) -> str:
        return f"TRLRewardFunction(name={self.__name__!r}, url={self.remote.url!r})"

    def targets(
        self, prompts: Sequence[Any], n: int, columns: Mapping[str, Any]
    ) -> list[Target | None]:
        """One target per completion from the batch's dataset columns."""

        def col(name: str) -> list[Any]:
            values = columns.get(name)
            return list(values) if values is not None else [None] * n

        solutions, frames = col(self.solution_column), col(self.frame_column)
        queries, images, rewards = (
            col(self.query_column),
            col(self.image_column),
            col(self.reward_column),
        )
        masks = col(self.mask_column) if self.mask_column else [None] * n
        if self.image_refs is not None:
            refs = self.image_refs(n, columns)
        elif self.send_images:
            refs = [encode_image(im) for im in images]
        else:
            refs = [None] * n
        out: list[Target | None] = []
        for i in range(n):
            query = queries[i]
            if not query and self.query_from_prompt and i < len(prompts):
                query = prompt_query(prompts[i])
            target = read_target(
                solutions[i], frames[i], query=query or None, image=refs[i], reward=rewards[i]
            )
            if target is not None and masks[i] is not None:
                target = dataclasses.replace(target, mask=masks[i])
            out.append(target)
        return out

    async def __call__(
        self, prompts: Sequence[Any] = (), completions: Sequence[Any] = (), **kwargs: Any
    ) -> list[float | None]:
        texts = [completion_text(c) for c in completions]
        outcomes = await self.remote.score(texts, self.targets(prompts, len(texts), kwargs))
        groups = kwargs.get(self.group_column)
        self._log(outcomes, groups, kwargs.get("log_extra"), kwargs.get("log_metric"))
        return [o.reward if o.applicable else None for o in outcomes]

    def _log(
        self,
        outcomes: list[Outcome],
        groups: Sequence[Any] | None,
        log_extra: Callable[[str, list], None] | None,
        log_metric: Callable[[str, float], None] | None,
    ) -> None:
        names = list(dict.fromkeys(n for o in outcomes for n in o.components))
        if log_extra is not None:
            for n in names:
                log_extra(f"prl_{n}", [o.components.get(n) for o in outcomes])
            log_extra("prl_fallback", [o.fallback for o in outcomes])
            log_extra("prl_error", [o.error for o in outcomes])
        scored = [
            (o, groups[i] if groups is not None else 0)
            for i, o in enumerate(outcomes)
            if o.applicable and o.reward is not None
        ]
        if log_metric is None or not any(o.applicable for o in outcomes):
            return
        applicable = [o for o in outcomes if o.applicable]
        p = self.metric_prefix
        log_metric(f"{p}/fallback_fraction", sum(o.fallback for o in applicable) / len(applicable))
        real = [(o, g) for o, g in scored if not o.fallback]
        if not real:  # every call fell back: nothing was scored to summarise
            return
        results = [
            {
                "reward": o.reward,
                "components": o.components,
                "error": o.error,
                "component_errors": o.component_errors,
            }
            for o, _ in real
        ]
        for name, value in summarise(results, [g for _, g in real]).items():
            if math.isfinite(value):
                log_metric(f"{p}/{name}", value)
