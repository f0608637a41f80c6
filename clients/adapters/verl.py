"""verl custom reward function backed by the reward service.

verl loads ``custom_reward_function.path`` / ``.name`` (default ``compute_score``), binds
``custom_reward_function.reward_kwargs`` with ``functools.partial`` (``_call_with_kwargs_async``
for coroutine functions) and calls, once per sample (``NaiveRewardManager``, Reward Loop
``run_single``)::

    await compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)

``solution_str`` is the decoded response (``skip_special_tokens=True``); ``ground_truth`` is
``reward_model.ground_truth`` of the row; ``extra_info`` is the row's ``extra_info`` dict. The
result is ``{"score": float, ...}``; the other keys go to ``reward_extra_info`` (one list per
key, so every sample returns the same keys). Config::

    custom_reward_function:
      path: <site-packages>/clients/adapters/verl.py
      name: compute_score
      reward_kwargs: {url: "http://reward:8001", reward: dig, timeout_s: 30, fallback_reward: 0.0}

The batch form ``compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos)``
serves ``reward_model.reward_manager=batch``.

``ground_truth``: a solution or an envelope (see :func:`~clients.adapters.common.read_target`);
``extra_info`` may add ``frame``, ``query``, ``image``, ``reward``. The reward used is, first
found: the envelope's/extra_info's ``reward``, ``rewards_by_source[data_source]``, the
``reward`` kwarg, else ``data_source`` itself as a preset name.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from clients.adapters.common import (
    Outcome,
    RemoteReward,
    Target,
    read_target,
    run_coroutine_sync,
)

_REMOTES: dict[tuple, RemoteReward] = {}
_REMOTES_LOCK = threading.Lock()


def remote_for(
    url: str | None,
    api_key: str | None,
    timeout_s: float,
    fallback_reward: float,
    max_retries: int,
    components: Sequence[str] = (),
    coalesce_ms: float = 5.0,
) -> RemoteReward:
    """One :class:`RemoteReward` per configuration and process (clients reused across calls)."""
    key = (url, api_key, timeout_s, fallback_reward, max_retries, tuple(components), coalesce_ms)
    with _REMOTES_LOCK:
        if key not in _REMOTES:
            _REMOTES[key] = RemoteReward(
                url,
                api_key=api_key,
                timeout_s=timeout_s,
                fallback_reward=fallback_reward,
                max_retries=max_retries,
                components=components,
                coalesce_ms=coalesce_ms,
            )
        return _REMOTES[key]


def verl_target(
    data_source: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None,
    reward: Any,
    rewards_by_source: Mapping[str, Any] | None,
) -> Target:
    """The sample's target, with the reward resolved in the documented order."""
    info = dict(extra_info or {})
    target = read_target(
        ground_truth,
        info.get("frame"),
        query=info.get("query"),
        image=info.get("image"),
        reward=info.get("reward"),
    )
    if target is None:
        raise ValueError(f"ground_truth is empty for data_source={data_source!r}")
    if target.reward is None:
        chosen = (rewards_by_source or {}).get(data_source) or reward or data_source
        target = Target(target.solution, target.frame, target.query, target.image, chosen)
    return target


def verl_result(remote: RemoteReward, outcome: Outcome) -> dict[str, float]:
    """``{"score", <components>, "prl_fallback", "prl_error"}`` — numbers only, stable keys."""
    return remote.flat_result(outcome, "score")


async def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    url: str | None = None,
    reward: Any = None,
    rewards_by_source: Mapping[str, Any] | None = None,
    api_key: str | None = None,
    timeout_s: float = 60.0,
    fallback_reward: float = 0.0,
    max_retries: int = 3,
    components: Sequence[str] = (),
    coalesce_ms: float = 5.0,
    **_: Any,
) -> dict[str, float]:
    """Score one verl sample; ``prl_fallback = 1`` when ``fallback_reward`` stood in.

    verl collects each extra key into a list over the batch, so pass ``components`` (the
    spec's component names) to fix the keys from the first sample on, fallbacks included;
    otherwise they are learnt from the preset (``GET /v1/rewards``) or the first answer.
    Concurrent calls within ``coalesce_ms`` share one request (0 turns that off).
    """
    remote = remote_for(
        url, api_key, timeout_s, fallback_reward, max_retries, components, coalesce_ms
    )
    target = verl_target(data_source, ground_truth, extra_info, reward, rewards_by_source)
    outcome = await remote.score_one(solution_str, target)
    return verl_result(remote, outcome)


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    url: str | None = None,
    reward: Any = None,
    rewards_by_source: Mapping[str, Any] | None = None,
    api_key: str | None = None,
    timeout_s: float = 60.0,
    fallback_reward: float = 0.0,
    max_retries: int = 3,
    **_: Any,
) -> list[dict[str, float]]:
    """verl ``BatchRewardManager`` form: the whole batch in one request per reward."""
    infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    targets = [
        verl_target(ds, gt, info, reward, rewards_by_source)
        for ds, gt, info in zip(data_sources, ground_truths, infos, strict=True)
    ]
    remote = RemoteReward(
        url,
        api_key=api_key,
        timeout_s=timeout_s,
        fallback_reward=fallback_reward,
        max_retries=max_retries,
    )
    outcomes = run_coroutine_sync(remote.score_and_close(list(solution_strs), targets))
    return [verl_result(remote, o) for o in outcomes]
