"""EasyR1 batch reward function backed by the reward service.

EasyR1's ``AutoRewardManager`` (``verl/workers/reward/function.py``) loads
``worker.reward.reward_function=<path>.py:<name>`` (default name ``main``) with
``importlib.util.spec_from_file_location("custom_reward_fn", path)``, reads the module's
``REWARD_NAME`` and ``REWARD_TYPE`` (``"batch"``, the default, or ``"sequential"``), binds
``worker.reward.reward_function_kwargs`` with ``functools.partial`` and calls, synchronously::

    batch:       scores = fn([{"response", "response_length", "ground_truth"}, ...])
    sequential:  score = fn({"response", "response_length", "ground_truth"})

``response`` is decoded without special tokens (``skip_special_tokens``, default true),
``ground_truth`` is the dataset's answer column; no image and no prompt reach the function. It
writes ``score["overall"]`` at the last response token and appends every key of every score
to a per-key metrics list, so all values are floats and the keys are the same for every sample.

This file is the batch form (one ``/v1/score`` request per batch and reward);
:mod:`clients.adapters.easyr1_sequential` is the sequential one. Both return
``{"overall", <components>, "prl_fallback", "prl_error"}``: components are the preset's (from
``GET /v1/rewards``, once per process) or the ``components`` kwarg. A call that fails gives
``fallback_reward`` with ``prl_fallback = 1``; an empty or invalid ``ground_truth`` gives the
same with ``prl_error = 1`` (logged). ``ground_truth`` holds the solution or an envelope
``{"solution", "frame"?, "query"?, "reward"?}`` as JSON text.

Config::

    worker:
      reward:
        reward_function: <site-packages>/clients/adapters/easyr1.py:compute_score
        reward_function_kwargs: {url: "http://reward:8001", reward: dig, timeout_s: 30}
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from clients.adapters.common import BACKGROUND, Outcome, RemoteReward, Target, read_target

log = logging.getLogger(__name__)

REWARD_NAME = "perception_rl_remote"
REWARD_TYPE = "batch"

_REMOTES: dict[tuple, RemoteReward] = {}
_LOCK = threading.Lock()


def easyr1_remote(
    url: str | None,
    reward: Any,
    api_key: str | None,
    timeout_s: float,
    fallback_reward: float,
    max_retries: int,
    chunk_size: int | None,
    components: Sequence[str],
) -> RemoteReward:
    """One :class:`RemoteReward` per configuration and process (its keys stay known)."""
    key = (url, repr(reward), api_key, timeout_s, fallback_reward, max_retries, chunk_size)
    key += (tuple(components),)
    with _LOCK:
        if key not in _REMOTES:
            _REMOTES[key] = RemoteReward(
                url,
                reward=reward,
                api_key=api_key,
                timeout_s=timeout_s,
                fallback_reward=fallback_reward,
                max_retries=max_retries,
                chunk_size=chunk_size,
                components=components,
            )
        return _REMOTES[key]


def easyr1_score(remote: RemoteReward, outcome: Outcome) -> dict[str, float]:
    """``{"overall", <components>, "prl_fallback", "prl_error"}``."""
    return remote.flat_result(outcome, "overall")


async def score_inputs(
    remote: RemoteReward, reward_inputs: Sequence[Mapping[str, Any]]
) -> list[dict[str, float]]:
    """Score EasyR1 reward inputs; bad ground truths become flagged fallbacks."""
    targets: list[Target | None] = []
    bad: dict[int, str] = {}
    for i, item in enumerate(reward_inputs):
        try:
            target = read_target(item.get("ground_truth"))
        except ValueError as exc:
            target, bad[i] = None, str(exc)
        else:
            if target is None:
                bad[i] = "empty"
        targets.append(target)
    for i, why in bad.items():
        log.warning("reward_inputs[%d].ground_truth: %s; fallback reward given", i, why)
    texts = [str(item.get("response", "")) for item in reward_inputs]
    outcomes = await remote.score(texts, targets)
    for i, why in bad.items():
        outcomes[i] = Outcome(remote.fallback_reward, fallback=True, error=f"ground_truth: {why}")
    return [easyr1_score(remote, o) for o in outcomes]


def compute_score(
    reward_inputs: Sequence[Mapping[str, Any]],
    *,
    url: str | None = None,
    reward: Any = "dig",
    api_key: str | None = None,
    timeout_s: float = 60.0,
    fallback_reward: float = 0.0,
    max_retries: int = 3,
    chunk_size: int | None = None,
    components: Sequence[str] = (),
    **_: Any,
) -> list[dict[str, float]]:
    """Score an EasyR1 batch (``REWARD_TYPE = "batch"``), one request per reward."""
    remote = easyr1_remote(
        url, reward, api_key, timeout_s, fallback_reward, max_retries, chunk_size, components
    )
    return BACKGROUND.run(score_inputs(remote, reward_inputs))
