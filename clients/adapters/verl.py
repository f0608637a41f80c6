"""verl custom reward functions backed by the reward service (verl 0.9.1's Reward Loop).

verl loads ``reward.custom_reward_function.path`` / ``.name`` (the legacy top-level
``custom_reward_function.*`` is migrated there), binds ``reward_kwargs`` with
``functools.partial`` (``_call_with_kwargs_async`` for a coroutine function) and calls it once
per sample — ``RewardLoopWorker`` → ``NaiveRewardManager.run_single`` (or ``dapo``), many
samples concurrently on one event loop::

    await compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)

``solution_str`` is the decoded response (``skip_special_tokens=True``), ``ground_truth`` the
row's ``reward_model.ground_truth``, ``extra_info`` its ``extra_info`` dict. The result is
``{"score": float, ...}``; the other keys go to ``reward_extra_info`` (one list per key, so
every sample returns the same keys). Recipe (hydra needs ``+`` for keys that are not in verl's
default config, such as everything under ``reward_kwargs``)::

    reward.custom_reward_function.path=<site-packages>/clients/adapters/verl.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.url=http://reward:8001
    +reward.custom_reward_function.reward_kwargs.reward=dig

Which function for which reward manager:

* :func:`compute_score` (async) — the Reward Loop's ``naive`` / ``dapo`` managers (the
  default); concurrent calls within ``coalesce_ms`` share one ``/v1/score`` request.
* :func:`compute_score_sync` — verl's legacy sync managers (``verl.workers.reward_manager``
  ``naive``/``dapo``/``prime``), which cannot await a coroutine; it runs on the process's
  background loop (:data:`~clients.adapters.common.BACKGROUND`, one client per process).
* verl 0.9.1 has no ``batch`` manager in the Reward Loop; :func:`compute_score_batch` serves
  the legacy ``BatchRewardManager`` of older releases.

``ground_truth``: a solution or an envelope (see :func:`~clients.adapters.common.read_target`;
None-valued keys, as ``datasets`` fills them into a parquet column of mixed-task dicts, are
dropped); ``extra_info`` may add ``frame``, ``query``, ``image``, ``reward``. The reward used is,
first found: the envelope's/extra_info's ``reward``, ``rewards_by_source[data_source]``, the
``reward`` kwarg, else ``data_source`` itself as a preset name.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from clients.adapters.common import (
    BACKGROUND,
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
    info = {k: v for k, v in dict(extra_info or {}).items() if v is not None}
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


def compute_score_sync(
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
    **_: Any,
) -> dict[str, float]:
    """:func:`compute_score` for verl's legacy sync reward managers (one sample per call).

    Runs on the process's background event loop, so every call reuses one HTTP client; no
    coalescing (the legacy managers call one sample after another).
    """
    remote = remote_for(url, api_key, timeout_s, fallback_reward, max_retries, components, 0.0)
    target = verl_target(data_source, ground_truth, extra_info, reward, rewards_by_source)
    outcome = BACKGROUND.run(remote.score_one(solution_str, target))
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
    """verl's legacy ``BatchRewardManager`` form (not in verl 0.9.1's Reward Loop): the whole
    batch in one request per reward."""
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
