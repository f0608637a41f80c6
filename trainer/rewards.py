"""An async TRL reward function that scores completions over HTTP with the reward service.

TRL 1.16 runs reward functions that are coroutine functions concurrently on its own event loop
(``GRPOTrainer._calculate_rewards``: ``inspect.iscoroutinefunction`` → ``asyncio.gather``), and
calls each with ``prompts``, ``completions``, ``completion_ids``, every extra dataset column
(one value per completion) and ``log_metric``. We send one ``POST /v1/score`` per batch; each
sample carries the row's ``solution`` and ``frame`` JSON (columns of ``tasks.hf``) and the
completion text, and the service does parsing and aggregation. The per-sample route is used
(not ``/v1/score/groups``) because a process may hold only part of a group under multi-process
training; within-group statistics are computed here from the ``id`` column.

"inprocess" uses ``httpx.ASGITransport`` on the reward service's own app: the same request,
routes and validation as over the network.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from statistics import fmean, stdev
from typing import Any

import httpx

log = logging.getLogger(__name__)

INPROCESS = "inprocess"


@dataclass(frozen=True)
class RewardClientConfig:
    """Where and how to score: a base URL or ``"inprocess"``, a preset name or a spec dict."""

    url: str = INPROCESS
    reward: str | dict[str, Any] = "dig"
    api_key: str | None = "prl-dev-key"
    timeout_s: float = 60.0
    retries: int = 3
    backoff_s: float = 0.5
    name: str = "reward_service"
    extra_headers: dict[str, str] = field(default_factory=dict)


def completion_text(completion: Any) -> str:
    """Plain text of a TRL completion (a string or ``[{"role": "assistant", "content": ...}]``)."""
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion:
        content = message.get("content", "")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(p.get("text") or "" for p in content if p.get("type") == "text")
    return "".join(parts)


def _as_obj(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def build_samples(
    completions: Sequence[Any],
    solution: Sequence[Any],
    frame: Sequence[Any] | None = None,
    query: Sequence[Any] | None = None,
    ids: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """Wire ``samples`` of ``/v1/score``: ids ``<row id>#<k>`` unique within the batch."""
    out = []
    for k, completion in enumerate(completions):
        sample: dict[str, Any] = {
            "id": f"{ids[k] if ids is not None else 'row'}#{k}",
            "completion": completion_text(completion),
            "solution": _as_obj(solution[k]),
        }
        if frame is not None and frame[k] is not None:
            sample["frame"] = _as_obj(frame[k])
        if query is not None and query[k]:
            sample["query"] = query[k]
        out.append(sample)
    return out


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


def summarise(results: Sequence[dict[str, Any]], groups: Sequence[Any]) -> dict[str, float]:
    """Metrics of one scored batch: component means, reward mean, group std, error fraction."""
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
    metrics.update(group_statistics(rewards, groups))
    return metrics


def make_transport(url: str) -> tuple[httpx.AsyncBaseTransport | None, str]:
    """(transport, base_url): the ASGI transport on the reward app for ``"inprocess"``."""
    if url != INPROCESS:
        return None, url.rstrip("/")
    from services.reward.app import create_app

    return httpx.ASGITransport(app=create_app()), "http://reward.inprocess"


async def post_with_retries(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], retries: int, backoff_s: float
) -> dict[str, Any]:
    """POST with retries on connection errors, 429 and 5xx; a 4xx other than 429 raises at once."""
    for attempt in range(retries + 1):
        try:
            resp = await client.post(path, json=body)
        except httpx.TransportError as exc:
            if attempt == retries:
                raise RuntimeError(
                    f"reward service unreachable at {client.base_url}: {exc}"
                ) from exc
        else:
            if resp.status_code < 400:
                return resp.json()
            retryable = resp.status_code == 429 or resp.status_code >= 500
            if not retryable or attempt == retries:
                raise RuntimeError(
                    f"reward service {path} answered {resp.status_code}: {resp.text[:500]}"
                )
        await asyncio.sleep(backoff_s * 2**attempt)
    raise AssertionError("unreachable")


def make_reward_func(cfg: RewardClientConfig) -> Callable[..., Awaitable[list[float]]]:
    """An ``async def`` reward function for ``GRPOTrainer(reward_funcs=[...])``.

    Metrics logged through TRL's ``log_metric`` under ``<cfg.name>/...``: each component's
    mean, the batch mean, the mean within-group reward std, the zero-variance group fraction and
    the fraction of samples with a parse/scoring error.
    """
    transport, base_url = make_transport(cfg.url)
    headers = dict(cfg.extra_headers)
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"

    async def reward_service(
        completions: list[Any],
        solution: list[Any],
        frame: list[Any] | None = None,
        query: list[Any] | None = None,
        id: list[Any] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **_: Any,
    ) -> list[float]:
        samples = build_samples(completions, solution, frame, query, id)
        body = {"reward": cfg.reward, "samples": samples}
        async with httpx.AsyncClient(
            transport=transport, base_url=base_url, timeout=cfg.timeout_s, headers=headers
        ) as client:
            data = await post_with_retries(client, "/v1/score", body, cfg.retries, cfg.backoff_s)
        by_id = {r["id"]: r for r in data["results"]}
        results = [by_id[s["id"]] for s in samples]
        if log_metric is not None:
            groups = id if id is not None else [0] * len(results)
            for name, value in summarise(results, groups).items():
                log_metric(f"{cfg.name}/{name}", value)
        return [float(r["reward"]) for r in results]

    reward_service.__name__ = cfg.name
    reward_service.__qualname__ = cfg.name
    return reward_service
