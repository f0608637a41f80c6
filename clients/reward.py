"""Typed clients of the reward service (``/v1/score``, ``/v1/score/groups``, ``/v1/rewards``,
``/v1/aggregate``), sync and async.

>>> with RewardClient("http://127.0.0.1:8001") as rc:                       # doctest: +SKIP
...     out = rc.score([{"id": "a", "completion": "<think>…</think><answer>[1,2,3,4]</answer>",
...                      "solution": {"boxes": [[1, 2, 3, 4]]}}], reward="vlmr1_rec")
...     out.results[0].reward

Large batches are split into requests within the server's limits (``GET /v1/limits`` if the
server has it, else ``chunk_size=`` / ``max_body_bytes=``) and reassembled in order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import httpx

from clients.base import (
    AsyncAPIClient,
    BatchCall,
    Call,
    SyncAPIClient,
    encode_json,
    get_call,
    post_call,
)
from schemas.reward import (
    AggregateRequest,
    AggregateResponse,
    BatchStats,
    Group,
    GroupResult,
    GroupsResponse,
    RewardRef,
    RewardsCatalog,
    RewardSpec,
    Sample,
    ScoreResponse,
)

SampleLike = Sample | Mapping[str, Any]
GroupLike = Group | Mapping[str, Any]

BATCH_COUPLED_ADVANTAGES = frozenset({"batch"})
"""Advantage estimators that normalise with statistics of the whole batch: such a request is
never split (its advantages would change), so it must fit the server's limits as one."""


def _samples(samples: Iterable[SampleLike]) -> list[Sample]:
    return [s if isinstance(s, Sample) else Sample.model_validate(s) for s in samples]


def _groups(groups: Iterable[GroupLike]) -> list[Group]:
    return [g if isinstance(g, Group) else Group.model_validate(g) for g in groups]


def _reward_json(reward: RewardRef | Mapping[str, Any]) -> bytes:
    if isinstance(reward, Mapping):
        reward = RewardSpec.model_validate(reward)
    return encode_json(reward)


def _aggregate_request(
    values: Sequence[Mapping[str, float]], reward: RewardRef | Mapping[str, Any]
) -> AggregateRequest:
    ref = RewardSpec.model_validate(reward) if isinstance(reward, Mapping) else reward
    return AggregateRequest(reward=ref, values=[dict(v) for v in values])


def score_envelope(reward: RewardRef | Mapping[str, Any]) -> tuple[bytes, bytes]:
    """JSON before and after the samples array of a ``/v1/score`` body."""
    return b'{"reward":' + _reward_json(reward) + b',"samples":', b"}"


def groups_envelope(
    reward: RewardRef | Mapping[str, Any], advantage: str, advantage_params: Mapping[str, Any]
) -> tuple[bytes, bytes]:
    """JSON before and after the groups array of a ``/v1/score/groups`` body."""
    head = (
        b'{"reward":'
        + _reward_json(reward)
        + b',"advantage":'
        + encode_json(advantage)
        + b',"advantage_params":'
        + encode_json(dict(advantage_params))
        + b',"groups":'
    )
    return head, b"}"


def merge_score_responses(parts: Sequence[ScoreResponse]) -> ScoreResponse:
    """Concatenate the results of consecutive slices (the spec is the same in every slice)."""
    return ScoreResponse(results=[r for p in parts for r in p.results], reward=parts[0].reward)


def batch_stats(groups: Sequence[GroupResult]) -> BatchStats:
    """Batch statistics recomputed from group results, for a batch sent in several slices.

    Same definitions as the service (``services.reward.scoring.pipeline.batch_stats``). Over all
    N completions with rewards r: ``reward_mean`` = Σr/N; ``reward_std`` = sample std
    (ddof = 1; 0 when N < 2) of r; ``mean_group_std`` = mean of the groups' ``std``;
    ``zero_variance_fraction`` = share of groups with ``zero_variance``; ``error_fraction`` =
    share of completions with an error. Empty batch → zeros.
    """
    rewards = [r for g in groups for r in g.rewards]
    n, k = len(rewards), len(groups)
    mean = sum(rewards) / n if n else 0.0
    var = sum((r - mean) ** 2 for r in rewards) / (n - 1) if n > 1 else 0.0
    errors = sum(1 for g in groups for e in g.errors if e is not None)
    return BatchStats(
        n_groups=k,
        n_completions=n,
        reward_mean=mean,
        reward_std=math.sqrt(var),
        mean_group_std=sum(g.std for g in groups) / k if k else 0.0,
        zero_variance_fraction=sum(g.zero_variance for g in groups) / k if k else 0.0,
        error_fraction=errors / n if n else 0.0,
    )


def merge_groups_responses(parts: Sequence[GroupsResponse]) -> GroupsResponse:
    """Concatenate slices; a single slice keeps the server's own stats untouched."""
    if len(parts) == 1:
        return parts[0]
    groups = [g for p in parts for g in p.groups]
    return GroupsResponse(groups=groups, stats=batch_stats(groups), reward=parts[0].reward)


def _check_unsplittable(advantage: str, n_chunks: int) -> None:
    if advantage in BATCH_COUPLED_ADVANTAGES and n_chunks > 1:
        raise ValueError(
            f"advantage '{advantage}' normalises over the whole batch, so the batch cannot be "
            f"split into {n_chunks} requests; send fewer groups per call or use 'grpo'"
        )


def score_batch(
    samples: Iterable[SampleLike], reward: RewardRef | Mapping[str, Any]
) -> BatchCall[ScoreResponse, ScoreResponse]:
    """``POST /v1/score`` for ``samples``, split to fit the server's limits."""
    head, tail = score_envelope(reward)
    return BatchCall(
        "/v1/score",
        head,
        [encode_json(s) for s in _samples(samples)],
        tail,
        "max_samples",
        partial(SyncAPIClient.parse, ScoreResponse),
        merge_score_responses,
    )


def groups_batch(
    groups: Iterable[GroupLike],
    reward: RewardRef | Mapping[str, Any],
    advantage: str = "grpo",
    advantage_params: Mapping[str, Any] | None = None,
) -> BatchCall[GroupsResponse, GroupsResponse]:
    """``POST /v1/score/groups``; groups are never split, and a batch-coupled ``advantage``
    refuses a batch that would need several requests."""
    validated = _groups(groups)
    head, tail = groups_envelope(reward, advantage, advantage_params or {})
    return BatchCall(
        "/v1/score/groups",
        head,
        [encode_json(g) for g in validated],
        tail,
        "max_samples",
        partial(SyncAPIClient.parse, GroupsResponse),
        merge_groups_responses,
        weights=[len(g.completions) for g in validated],
        check_chunks=partial(_check_unsplittable, advantage),
    )


def rewards_call() -> Call[RewardsCatalog]:
    return get_call("/v1/rewards", RewardsCatalog)


def aggregate_call(
    values: Sequence[Mapping[str, float]], reward: RewardRef | Mapping[str, Any]
) -> Call[AggregateResponse]:
    return post_call("/v1/aggregate", _aggregate_request(values, reward), AggregateResponse)


def healthz_call() -> Call[bool]:
    return Call("GET", "/healthz", _is_ok)


def _is_ok(response: httpx.Response) -> bool:
    return response.json().get("status") == "ok"


class _RewardMixin:
    env_url = "PRL_REWARD_URL"
    default_url = "http://127.0.0.1:8001"
    limits_path = "/v1/limits"


class RewardClient(_RewardMixin, SyncAPIClient):
    """Blocking reward-service client. See :class:`~clients.base.SyncAPIClient` for options."""

    def score(
        self, samples: Iterable[SampleLike], *, reward: RewardRef | Mapping[str, Any]
    ) -> ScoreResponse:
        """Score completions one by one: ``POST /v1/score`` (split to fit server limits)."""
        return self.send_batch(score_batch(samples, reward))

    def score_groups(
        self,
        groups: Iterable[GroupLike],
        *,
        reward: RewardRef | Mapping[str, Any],
        advantage: str = "grpo",
        advantage_params: Mapping[str, Any] | None = None,
    ) -> GroupsResponse:
        """Score GRPO groups with advantages: ``POST /v1/score/groups``."""
        return self.send_batch(groups_batch(groups, reward, advantage, advantage_params))

    def rewards(self) -> RewardsCatalog:
        """Registered components, aggregators, estimators and presets: ``GET /v1/rewards``."""
        return self.send(rewards_call())

    def aggregate(
        self, values: Sequence[Mapping[str, float]], *, reward: RewardRef | Mapping[str, Any]
    ) -> AggregateResponse:
        """Combine given component values with a spec's aggregation: ``POST /v1/aggregate``."""
        return self.send(aggregate_call(values, reward))

    def healthz(self) -> bool:
        return self.send(healthz_call())


class AsyncRewardClient(_RewardMixin, AsyncAPIClient):
    """Asyncio reward-service client; slices of a large batch go out concurrently."""

    async def score(
        self, samples: Iterable[SampleLike], *, reward: RewardRef | Mapping[str, Any]
    ) -> ScoreResponse:
        """Score completions one by one: ``POST /v1/score`` (split to fit server limits)."""
        return await self.send_batch(score_batch(samples, reward))

    async def score_groups(
        self,
        groups: Iterable[GroupLike],
        *,
        reward: RewardRef | Mapping[str, Any],
        advantage: str = "grpo",
        advantage_params: Mapping[str, Any] | None = None,
    ) -> GroupsResponse:
        """Score GRPO groups with advantages: ``POST /v1/score/groups``."""
        return await self.send_batch(groups_batch(groups, reward, advantage, advantage_params))

    async def rewards(self) -> RewardsCatalog:
        """Registered components, aggregators, estimators and presets: ``GET /v1/rewards``."""
        return await self.send(rewards_call())

    async def aggregate(
        self, values: Sequence[Mapping[str, float]], *, reward: RewardRef | Mapping[str, Any]
    ) -> AggregateResponse:
        """Combine given component values with a spec's aggregation: ``POST /v1/aggregate``."""
        return await self.send(aggregate_call(values, reward))

    async def healthz(self) -> bool:
        return await self.send(healthz_call())
