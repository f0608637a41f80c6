"""EasyR1 batch reward function backed by the reward service.

EasyR1 (``verl/workers/reward/function.py``) loads ``worker.reward.reward_function=
<path>.py:compute_score`` from a file path, reads the module's ``REWARD_NAME`` and
``REWARD_TYPE`` (``"batch"``), binds ``worker.reward.reward_function_kwargs`` with
``functools.partial`` and calls it synchronously once per batch::

    scores = reward_fn([{"response": str, "response_length": int, "ground_truth": str}, ...])

and writes ``score["overall"]`` at the last response token; every key of every score dict is
logged as a metric (so all keys are numbers and the same for every sample). No image and no
prompt reach the reward function: ``ground_truth`` must carry the solution as a JSON string,
either the solution itself or an envelope ``{"solution", "frame"?, "query"?, "reward"?}``.

Config::

    worker:
      reward:
        reward_function: <site-packages>/clients/adapters/easyr1.py:compute_score
        reward_function_kwargs: {url: "http://reward:8001", reward: dig, timeout_s: 30}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clients.adapters.common import Outcome, RemoteReward, read_target, run_coroutine_sync

REWARD_NAME = "perception_rl_remote"
REWARD_TYPE = "batch"


def easyr1_score(remote: RemoteReward, outcome: Outcome) -> dict[str, float]:
    """``{"overall", <components>, "prl_fallback", "prl_error"}``."""
    return remote.flat_result(outcome, "overall")


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
    **_: Any,
) -> list[dict[str, float]]:
    """Score an EasyR1 batch; failed calls give ``fallback_reward`` with ``prl_fallback = 1``."""
    targets = []
    for i, item in enumerate(reward_inputs):
        target = read_target(item["ground_truth"])
        if target is None:
            raise ValueError(f"reward_inputs[{i}].ground_truth is empty")
        targets.append(target)
    remote = RemoteReward(
        url,
        reward=reward,
        api_key=api_key,
        timeout_s=timeout_s,
        fallback_reward=fallback_reward,
        max_retries=max_retries,
        chunk_size=chunk_size,
    )
    texts = [str(item["response"]) for item in reward_inputs]
    outcomes = run_coroutine_sync(remote.score_and_close(texts, targets))
    return [easyr1_score(remote, o) for o in outcomes]
