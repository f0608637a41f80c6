"""OpenRLHF: the reward service's ``/get_reward``, or this file as a reward function.

**Remote URL (recommended).** ``--reward.remote_url http://reward:8001/get_reward`` (OpenRLHF
≤ 0.10: ``--remote_rm_url``). OpenRLHF POSTs ``{"query": [...], "prompts": [...],
"labels": [...]}`` — ``query`` is prompt + response decoded with special tokens — and reads
``rewards``, ``scores`` and ``extra_logs``. On failure its client retries 5 times, logs, and
leaves the sample's reward unset (silently). See docs/clients.md.

**Reward-function file.** ``--reward.remote_url <site-packages>/clients/adapters/openrlhf.py``
makes OpenRLHF call :func:`reward_func` (``asyncio.to_thread(reward_func, queries, prompts,
labels)``, one sample per call) instead; this path has our client's retries, a deadline and
an explicit fallback reward with ``extra_logs["prl_fallback"] = 1`` rather than a dropped
sample. A file gets no kwargs, so it is configured by environment variables:
``PRL_REWARD_URL``, ``PRL_REWARD_PRESET`` (default ``dig``), ``PRL_REWARD_TIMEOUT_S`` (60),
``PRL_REWARD_FALLBACK`` (0.0), ``PRL_API_KEY``. ``labels`` hold the solution or an envelope
as JSON (``--data.label_key``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from clients.adapters.common import RemoteReward, read_target, run_coroutine_sync

ASSISTANT_MARKERS = ("<|im_start|>assistant\n", "<|im_start|>assistant")
END_MARKERS = ("<|im_end|>", "<|endoftext|>")


def split_response(query: str, prompt: str | None = None) -> str:
    """The response part of OpenRLHF's ``query`` (= prompt + response, special tokens kept).

    The text after ``prompt`` when ``query`` starts with it, else after the last Qwen
    ``<|im_start|>assistant`` marker, else the whole query; trailing end/pad tokens removed.
    """
    if prompt and query.startswith(prompt):
        response = query[len(prompt) :]
    else:
        response = query
        for marker in ASSISTANT_MARKERS:
            at = query.rfind(marker)
            if at >= 0:
                response = query[at + len(marker) :]
                break
    changed = True
    while changed:
        changed = False
        stripped = response.rstrip()
        for end in END_MARKERS:
            if stripped.endswith(end):
                response, changed = stripped[: -len(end)], True
    return response


def remote_from_env() -> RemoteReward:
    return RemoteReward(
        os.environ.get("PRL_REWARD_URL"),
        reward=os.environ.get("PRL_REWARD_PRESET", "dig"),
        api_key=os.environ.get("PRL_API_KEY"),
        timeout_s=float(os.environ.get("PRL_REWARD_TIMEOUT_S", "60")),
        fallback_reward=float(os.environ.get("PRL_REWARD_FALLBACK", "0.0")),
    )


def reward_func(
    queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **_: Any
) -> dict[str, Any]:
    """OpenRLHF reward-function protocol → ``{"rewards", "scores", "extra_logs"}`` (lists)."""
    remote = remote_from_env()
    texts = [split_response(q, p) for q, p in zip(queries, prompts, strict=True)]
    targets = [read_target(label) for label in labels]
    outcomes = run_coroutine_sync(remote.score_and_close(texts, targets))
    rewards = [
        float(o.reward) if o.reward is not None else float(remote.fallback_reward or 0.0)
        for o in outcomes
    ]
    logs: dict[str, list[float]] = {
        name: [remote.components_of(o)[name] for o in outcomes] for name in remote.known_components
    }
    # a sample without a label was not scored: it gets the fallback too, flagged
    logs["prl_fallback"] = [float(o.fallback or not o.applicable) for o in outcomes]
    logs["prl_error"] = [float(o.error is not None) for o in outcomes]
    return {"rewards": rewards, "scores": rewards, "extra_logs": logs}
