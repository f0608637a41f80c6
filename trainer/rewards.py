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
routes and validation as over the network. HTTP goes through the SDK
(:class:`clients.reward.AsyncRewardClient`: retries with backoff and ``Retry-After``, request
splitting to the server's limits), one client per event loop (TRL runs async reward
functions on its own persistent loop).

DEVA alignment (:mod:`trainer.alignment`): with ``send_inputs`` each sample also carries
``image`` (a path under the embedding service's data root, from the ``image_path`` column, or
base64 of the row's last image) and ``query``; the ``alignment_mask`` column (the trainer's
attention mask) becomes the sample's ``mask``. Components that failed
(``component_errors``) are counted per component, never averaged in as zeros.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import weakref
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
    send_inputs: bool = False
    image_mode: str = "path"
    path_root: str | None = None


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
    images: Sequence[str | None] | None = None,
    masks: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """Wire ``samples`` of ``/v1/score``: ids ``<row id>#<k>`` unique within the batch.

    ``images`` (image references) and ``masks`` (``PatchMask`` dicts or None) are attached
    when given (DEVA alignment).
    """
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
        if images is not None and images[k] is not None:
            sample["image"] = images[k]
        if masks is not None and masks[k] is not None:
            sample["mask"] = _as_obj(masks[k])
        out.append(sample)
    return out


def image_refs(
    n: int,
    image_path: Sequence[Any] | None,
    images: Sequence[Any] | None,
    image: Sequence[Any] | None,
    *,
    mode: str,
    root: str | None,
) -> list[str | None]:
    """One image reference per completion for the alignment reward (the row's last image)."""
    from trainer.alignment import image_reference

    def last(k: int) -> Any:
        if images is not None and images[k]:
            return images[k][-1]
        return image[k] if image is not None else None

    paths = image_path if image_path is not None else [None] * n
    return [image_reference(paths[k], last(k), mode=mode, root=root) for k in range(n)]


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
    failed: dict[str, int] = defaultdict(int)
    for r in results:
        for name in r.get("component_errors") or {}:
            failed[name] += 1
    metrics.update({f"component_error_frac/{n}": c / len(results) for n, c in failed.items()})
    metrics.update(group_statistics(rewards, groups))
    return metrics


def make_transport(url: str) -> tuple[httpx.AsyncBaseTransport | None, str]:
    """(transport, base_url): the ASGI transport on the reward app for ``"inprocess"``."""
    if url != INPROCESS:
        return None, url.rstrip("/")
    from services.reward.app import create_app

    return httpx.ASGITransport(app=create_app()), "http://reward.inprocess"


class ClientPerLoop:
    """One :class:`~clients.reward.AsyncRewardClient` per running event loop (made lazily).

    An ``httpx.AsyncClient`` belongs to the loop that first used it; TRL keeps one loop for
    its async reward functions, tests use ``asyncio.run`` (a new loop each time).
    """

    def __init__(self, cfg: RewardClientConfig) -> None:
        self.cfg = cfg
        self.transport, self.base_url = make_transport(cfg.url)
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self) -> Any:
        from clients.retry import RetryPolicy
        from clients.reward import AsyncRewardClient

        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                client = AsyncRewardClient(
                    self.base_url,
                    api_key=self.cfg.api_key or "",
                    timeout=self.cfg.timeout_s,
                    retry=RetryPolicy(
                        max_retries=self.cfg.retries, initial_backoff_s=self.cfg.backoff_s
                    ),
                    transport=self.transport,
                    headers=self.cfg.extra_headers,
                )
                self._clients[loop] = client
        return client


def make_reward_func(cfg: RewardClientConfig) -> Callable[..., Awaitable[list[float]]]:
    """An ``async def`` reward function for ``GRPOTrainer(reward_funcs=[...])``.

    Metrics logged through TRL's ``log_metric`` under ``<cfg.name>/...``: each component's
    mean, the batch mean, the mean within-group reward std, the zero-variance group fraction,
    the fraction of samples with a parse/scoring error and, per failed component, the
    fraction of samples it failed on (``component_error_frac/<name>``).
    """
    clients = ClientPerLoop(cfg)

    async def reward_service(
        completions: list[Any],
        solution: list[Any],
        frame: list[Any] | None = None,
        query: list[Any] | None = None,
        id: list[Any] | None = None,
        image_path: list[Any] | None = None,
        images: list[Any] | None = None,
        image: list[Any] | None = None,
        alignment_mask: list[Any] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **_: Any,
    ) -> list[float]:
        refs = masks = None
        if cfg.send_inputs:
            refs = image_refs(
                len(completions),
                image_path,
                images,
                image,
                mode=cfg.image_mode,
                root=cfg.path_root,
            )
            masks = alignment_mask
        samples = build_samples(completions, solution, frame, query, id, refs, masks)
        response = await clients.get().score(samples, reward=cfg.reward)
        by_id = {r.id: r.model_dump(mode="json") for r in response.results}
        results = [by_id[s["id"]] for s in samples]
        if log_metric is not None:
            groups = id if id is not None else [0] * len(results)
            for name, value in summarise(results, groups).items():
                log_metric(f"{cfg.name}/{name}", value)
        return [float(r["reward"]) for r in results]

    reward_service.__name__ = cfg.name
    reward_service.__qualname__ = cfg.name
    return reward_service
