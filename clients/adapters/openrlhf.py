"""OpenRLHF: the reward service's ``/get_reward``, or this file as a reward function.

**Remote URL (recommended).** ``--reward.remote_url http://reward:8001/get_reward`` (OpenRLHF
≤ 0.10: ``--remote_rm_url``). OpenRLHF 0.11's ``SingleTurnAgentExecutor`` POSTs
``{"query": [q], "prompts": [p], "labels": [label]}`` — one sample per request, ``query`` =
prompt + response decoded with special tokens — and reads ``rewards``, ``scores`` and
``extra_logs``. See docs/clients.md.

**Reward-function file.** ``--reward.remote_url <site-packages>/clients/adapters/openrlhf.py``
makes the same executor load this file and call :func:`reward_func` as
``asyncio.to_thread(reward_func, [query], [prompt], [label])``, one sample per call, each from
a worker thread. This path has our client's retries, a deadline and an explicit fallback
reward with ``extra_logs["prl_fallback"] = 1`` rather than a dropped sample. All calls of a
process share one event loop, one HTTP client and one catalog look-up
(:data:`~clients.adapters.common.BACKGROUND`), and calls that arrive within
``PRL_REWARD_COALESCE_MS`` of each other go out as one ``/v1/score`` request. A file gets no
kwargs, so it is configured by environment variables: ``PRL_REWARD_URL``,
``PRL_REWARD_PRESET`` (default ``dig``), ``PRL_REWARD_TIMEOUT_S`` (60),
``PRL_REWARD_FALLBACK`` (0.0), ``PRL_REWARD_COALESCE_MS`` (5), ``PRL_REWARD_LOG_COMPONENTS``
(comma-separated ``extra_logs`` component keys; default: every component the service
registers), ``PRL_API_KEY``.

Labels are what ``--data.label_key`` holds: a solution or an envelope ``{"solution",
"frame"?, "query"?, "image"?, "reward"?}``, as a JSON object or its JSON text. A missing or
invalid label gives the sample the fallback reward with ``prl_error = prl_fallback = 1``.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

from clients.adapters.common import BACKGROUND, Outcome, RemoteReward, Target, read_target

ASSISTANT_MARKERS = ("<|im_start|>assistant\n", "<|im_start|>assistant")
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>", "<|end_of_text|>")
PAD_TOKENS = ("<|image_pad|>", "<|video_pad|>")
_PAD_RUNS = re.compile("(" + "|".join(re.escape(t) for t in PAD_TOKENS) + r")(?:\1)+")


def collapse_pads(text: str) -> str:
    """Each run of one vision pad token (``<|image_pad|>`` …) as a single token."""
    return _PAD_RUNS.sub(r"\1", text)


def split_response(query: str, prompt: str | None = None) -> str:
    """The response part of OpenRLHF's ``query`` (= prompt + response, special tokens kept).

    In order: the text after ``prompt`` when ``query`` starts with it; the same with runs of
    vision pads collapsed on both sides (for a VLM the processor expanded the prompt's one
    ``<|image_pad|>`` into one per vision token, so the raw prefix never matches); after the
    last occurrence of the (collapsed) prompt; after the last Qwen ``<|im_start|>assistant``
    turn; else the whole query. Trailing end-of-sequence / pad tokens and whitespace removed.
    """
    text: str | None = None
    if prompt and query.startswith(prompt):
        text = query[len(prompt) :]
    elif prompt:
        cq, cp = collapse_pads(query), collapse_pads(prompt)
        if cq.startswith(cp):
            text = cq[len(cp) :]
        elif (at := cq.rfind(cp)) >= 0:
            text = cq[at + len(cp) :]
    if text is None:
        text = query
        for marker in ASSISTANT_MARKERS:
            at = query.rfind(marker)
            if at >= 0:
                text = query[at + len(marker) :]
                break
    text = text.rstrip()
    stripped = True
    while stripped:
        stripped = False
        for tok in END_TOKENS:
            if text.endswith(tok):
                text = text[: -len(tok)].rstrip()
                stripped = True
    return text


_ENV = (
    "PRL_REWARD_URL",
    "PRL_REWARD_PRESET",
    "PRL_API_KEY",
    "PRL_REWARD_TIMEOUT_S",
    "PRL_REWARD_FALLBACK",
    "PRL_REWARD_COALESCE_MS",
)
_REMOTES: dict[tuple[str | None, ...], RemoteReward] = {}
_REMOTES_LOCK = threading.Lock()


def remote_from_env() -> RemoteReward:
    """The process's :class:`RemoteReward` for the current environment (made once)."""
    key = tuple(os.environ.get(k) for k in _ENV)
    with _REMOTES_LOCK:
        if key not in _REMOTES:
            env = dict(zip(_ENV, key, strict=True))
            _REMOTES[key] = RemoteReward(
                env["PRL_REWARD_URL"],
                reward=env["PRL_REWARD_PRESET"] or "dig",
                api_key=env["PRL_API_KEY"],
                timeout_s=float(env["PRL_REWARD_TIMEOUT_S"] or 60),
                fallback_reward=float(env["PRL_REWARD_FALLBACK"] or 0.0),
                coalesce_ms=float(env["PRL_REWARD_COALESCE_MS"] or 5.0),
            )
        return _REMOTES[key]


async def log_components(remote: RemoteReward) -> list[str]:
    """Component keys of ``extra_logs``: ``PRL_REWARD_LOG_COMPONENTS``, else the catalog's."""
    fixed = os.environ.get("PRL_REWARD_LOG_COMPONENTS")
    if fixed is not None:
        return [n.strip() for n in fixed.split(",") if n.strip()]
    return sorted(await remote.all_components() or [])


async def score_openrlhf(
    remote: RemoteReward,
    queries: Sequence[str],
    prompts: Sequence[str],
    labels: Sequence[Any],
) -> dict[str, Any]:
    """``{"rewards", "scores", "extra_logs"}`` for aligned OpenRLHF lists (runs on a loop)."""
    targets: list[Target | None] = []
    outcomes: list[Outcome | None] = []
    for i, label in enumerate(labels):
        try:
            target = read_target(label)
        except ValueError as exc:
            target, error = None, f"labels[{i}]: {exc}"
        else:
            error = None if target is not None else f"labels[{i}]: missing or empty"
        targets.append(target)
        outcomes.append(
            None if error is None else Outcome(remote.fallback_reward, fallback=True, error=error)
        )
    texts = [split_response(q, p) for q, p in zip(queries, prompts, strict=True)]
    todo = [i for i, o in enumerate(outcomes) if o is None]
    got = await asyncio.gather(*(remote.score_one(texts[i], targets[i]) for i in todo))
    for i, o in zip(todo, got, strict=True):
        outcomes[i] = o
    done: list[Outcome] = [o for o in outcomes if o is not None]
    fallback = float(remote.fallback_reward or 0.0)
    rewards = [float(o.reward) if o.reward is not None else fallback for o in done]
    logs = {
        name: [float(o.components.get(name, 0.0)) for o in done]
        for name in await log_components(remote)
    }
    logs["prl_fallback"] = [float(o.fallback) for o in done]
    logs["prl_error"] = [float(o.error is not None) for o in done]
    return {"rewards": rewards, "scores": rewards, "extra_logs": logs}


def reward_func(
    queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **_: Any
) -> dict[str, Any]:
    """OpenRLHF reward-function protocol → ``{"rewards", "scores", "extra_logs"}`` (lists).

    Sync, callable from any thread; the work runs on the process's background loop.
    """
    remote = remote_from_env()
    return BACKGROUND.run(score_openrlhf(remote, queries, prompts, labels))
