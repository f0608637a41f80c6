"""The trainer's reward: the SDK's TRL reward function, configured from the run config.

The reward function is :class:`clients.adapters.trl.TRLRewardFunction` — the same object TRL
users get — so what a sample carries is defined once. TRL 1.16 runs it concurrently on its own
event loop (``GRPOTrainer._calculate_rewards``) and calls it with ``prompts``,
``completions``, ``completion_ids``, every extra dataset column (one value per completion)
and ``log_metric``. It sends one ``POST /v1/score`` per batch; each sample carries the row's
``solution`` and ``frame`` JSON (columns of ``tasks.hf``), the ``query`` column when present
and the completion text, and the service does parsing and aggregation. The per-sample route
is used (not ``/v1/score/groups``) because a process may hold only part of a group under
multi-process training; within-group statistics are computed client-side from the ``id``
column.

"inprocess" uses ``httpx.ASGITransport`` on the reward service's own app (:func:`make_transport`):
the same request, routes and validation as over the network. The trainer is strict: a call
that still fails after the client's retries raises (a run must not go on without its reward).

DEVA alignment (:mod:`trainer.alignment`): with ``send_inputs`` each sample also carries
``image`` (a path under the embedding service's data root, from the ``image_path`` column, or
base64 of the row's last image; :func:`image_refs`) and the ``alignment_mask`` column (the
trainer's attention mask) as its ``mask``. Metrics are logged under ``<cfg.name>/``
(:func:`clients.adapters.trl.summarise`): ``mean``, ``component/<name>``, ``error_frac``,
``component_error_frac/<name>``, ``group_std``, ``zero_variance_frac``, ``fallback_fraction``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from clients.adapters.common import completion_text
from clients.adapters.trl import TRLRewardFunction, group_statistics, summarise

INPROCESS = "inprocess"

__all__ = [
    "INPROCESS",
    "RewardClientConfig",
    "completion_text",
    "group_statistics",
    "image_refs",
    "make_reward_func",
    "make_transport",
    "summarise",
]


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
    send_inputs: bool = False
    image_mode: str = "path"
    path_root: str | None = None


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


def column_image_refs(
    n: int, columns: Mapping[str, Any], *, mode: str, root: str | None
) -> list[str | None]:
    """:func:`image_refs` from a TRL batch's dataset columns (``TRLRewardFunction`` hook)."""
    return image_refs(
        n,
        columns.get("image_path"),
        columns.get("images"),
        columns.get("image"),
        mode=mode,
        root=root,
    )


def make_transport(url: str) -> tuple[httpx.AsyncBaseTransport | None, str]:
    """(transport, base_url): the ASGI transport on the reward app for ``"inprocess"``."""
    if url != INPROCESS:
        return None, url.rstrip("/")
    from services.reward.app import create_app

    return httpx.ASGITransport(app=create_app()), "http://reward.inprocess"


def _transport_for(url: str) -> tuple[httpx.AsyncBaseTransport | None, str]:
    return make_transport(url)  # looked up at call time (tests replace make_transport)


def make_reward_func(cfg: RewardClientConfig) -> TRLRewardFunction:
    """The run's reward function for ``GRPOTrainer(reward_funcs=[...])``: a strict
    :class:`~clients.adapters.trl.TRLRewardFunction` named ``cfg.name``."""
    hook = None
    if cfg.send_inputs:
        hook = functools.partial(column_image_refs, mode=cfg.image_mode, root=cfg.path_root)
    return TRLRewardFunction(
        cfg.url,
        reward=cfg.reward,
        name=cfg.name,
        api_key=cfg.api_key or "",
        timeout_s=cfg.timeout_s,
        max_retries=cfg.retries,
        backoff_s=cfg.backoff_s,
        query_from_prompt=False,
        mask_column="alignment_mask" if cfg.send_inputs else None,
        image_refs=hook,
        metric_prefix=cfg.name,
        strict=True,
        transport_factory=functools.partial(_transport_for, cfg.url),
    )
