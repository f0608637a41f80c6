"""EasyR1 sequential reward function (``REWARD_TYPE = "sequential"``): one sample per call.

The same contract and result keys as the batch form, :mod:`clients.adapters.easyr1`; EasyR1
calls ``fn({"response", "response_length", "ground_truth"})`` once per sample, one after
another. Every call of a process reuses one HTTP client (the background loop of
:mod:`clients.adapters.common`). Prefer the batch form: it sends one request per batch.

Config::

    worker:
      reward:
        reward_function: <site-packages>/clients/adapters/easyr1_sequential.py:compute_score
        reward_function_kwargs: {url: "http://reward:8001", reward: dig, timeout_s: 30}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clients.adapters.common import BACKGROUND
from clients.adapters.easyr1 import easyr1_remote, score_inputs

REWARD_NAME = "perception_rl_remote"
REWARD_TYPE = "sequential"


def compute_score(
    reward_input: Mapping[str, Any],
    *,
    url: str | None = None,
    reward: Any = "dig",
    api_key: str | None = None,
    timeout_s: float = 60.0,
    fallback_reward: float = 0.0,
    max_retries: int = 3,
    components: Sequence[str] = (),
    **_: Any,
) -> dict[str, float]:
    """Score one EasyR1 sample → ``{"overall", <components>, "prl_fallback", "prl_error"}``."""
    remote = easyr1_remote(
        url, reward, api_key, timeout_s, fallback_reward, max_retries, None, components
    )
    (score,) = BACKGROUND.run(score_inputs(remote, [reward_input]))
    return score
