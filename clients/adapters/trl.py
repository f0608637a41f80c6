"""TRL ``GRPOTrainer`` reward function backed by the reward service.

TRL (pinned 1.16) calls every reward function with keyword arguments only::

    await reward_func(prompts=prompts, completions=completions,
                      completion_ids=completion_ids, **reward_kwargs)

where ``reward_kwargs`` holds each dataset column of the batch (one entry per completion,
``image``/``images`` as PIL objects included), ``trainer_state``, ``log_extra(column,
values)`` and ``log_metric(name, value)`` (``GRPOTrainer._calculate_rewards``). It detects
async callables, class instances included, with ``trl.trainer.utils.is_async_callable`` and
names the function by ``__name__`` (``get_callable_name``). It returns one float per
completion; ``None`` → NaN = "this reward does not apply" (a row where every reward function
says None gets advantage 0).

Usage::

    reward = TRLRewardFunction("http://127.0.0.1:8001", reward="dig", fallback_reward=None)
    GRPOTrainer(model=..., reward_funcs=[reward], train_dataset=ds, ...)

Columns read from the dataset: ``solution`` (a solution or envelope, dict or JSON string;
None/empty → not applicable), ``frame`` (optional), ``query`` (optional; when missing or empty,
the user text of the prompt if ``query_from_prompt``), ``image`` (only with ``send_images``: PIL images are
sent as base64 PNG, strings as they are), ``reward`` (optional per-row preset).

Logged: per-component columns ``prl_<name>`` and ``prl_fallback`` / ``prl_error`` in the
completions table (``log_extra``), and batch means ``prl/<name>`` and ``prl/fallback_fraction``
(``log_metric``).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clients.adapters.common import (
    Outcome,
    RemoteReward,
    Target,
    completion_text,
    prompt_query,
    read_target,
)
from schemas.reward import RewardRef


def encode_image(image: Any) -> str | None:
    """A string image reference as is; a PIL image as base64 PNG; None as None."""
    if image is None or isinstance(image, str):
        return image
    if isinstance(image, list | tuple):
        return encode_image(image[-1]) if image else None  # solution boxes refer to the last image
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


class TRLRewardFunction:
    """Async, picklable reward function for ``GRPOTrainer(reward_funcs=[...])``.

    ``fallback_reward`` defaults to None (TRL: "not applicable", the sample's reward is NaN and
    not counted) — set a number to score failed calls explicitly instead. Either way
    ``prl_fallback`` marks the sample in the completions table.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        reward: RewardRef | Mapping[str, Any] = "dig",
        name: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        fallback_reward: float | None = None,
        max_retries: int = 3,
        solution_column: str = "solution",
        frame_column: str = "frame",
        query_column: str = "query",
        image_column: str = "image",
        reward_column: str = "reward",
        query_from_prompt: bool = True,
        send_images: bool = False,
        chunk_size: int | None = None,
    ) -> None:
        self.remote = RemoteReward(
            url,
            reward=reward,
            api_key=api_key,
            timeout_s=timeout_s,
            fallback_reward=fallback_reward,
            max_retries=max_retries,
            chunk_size=chunk_size,
        )
        self.__name__ = name or f"prl_{reward if isinstance(reward, str) else 'reward'}"
        self.solution_column, self.frame_column = solution_column, frame_column
        self.query_column, self.image_column = query_column, image_column
        self.reward_column = reward_column
        self.query_from_prompt, self.send_images = query_from_prompt, send_images

    def __repr__(self) -> str:
        return f"TRLRewardFunction(name={self.__name__!r}, url={self.remote.url!r})"

    def targets(
        self, prompts: Sequence[Any], n: int, columns: Mapping[str, Any]
    ) -> list[Target | None]:
        """One target per completion from the batch's dataset columns."""

        def col(name: str) -> list[Any]:
            values = columns.get(name)
            return list(values) if values is not None else [None] * n

        solutions, frames = col(self.solution_column), col(self.frame_column)
        queries, images, rewards = (
            col(self.query_column),
            col(self.image_column),
            col(self.reward_column),
        )
        out: list[Target | None] = []
        for i in range(n):
            query = queries[i]
            if not query and self.query_from_prompt and i < len(prompts):
                query = prompt_query(prompts[i])
            image = encode_image(images[i]) if self.send_images else None
            out.append(
                read_target(solutions[i], frames[i], query=query, image=image, reward=rewards[i])
            )
        return out

    async def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        texts = [completion_text(c) for c in completions]
        outcomes = await self.remote.score(texts, self.targets(prompts, len(texts), kwargs))
        self._log(outcomes, kwargs.get("log_extra"), kwargs.get("log_metric"))
        return [o.reward if o.applicable else None for o in outcomes]

    def _log(
        self,
        outcomes: list[Outcome],
        log_extra: Callable[[str, list], None] | None,
        log_metric: Callable[[str, float], None] | None,
    ) -> None:
        names = list(dict.fromkeys(n for o in outcomes for n in o.components))
        scored = [o for o in outcomes if o.applicable]
        if log_extra is not None:
            for n in names:
                log_extra(f"prl_{n}", [o.components.get(n) for o in outcomes])
            log_extra("prl_fallback", [o.fallback for o in outcomes])
            log_extra("prl_error", [o.error for o in outcomes])
        if log_metric is not None and scored:
            log_metric("prl/fallback_fraction", sum(o.fallback for o in scored) / len(scored))
            for n in names:
                vals = [o.components[n] for o in scored if n in o.components]
                if vals and all(math.isfinite(v) for v in vals):
                    log_metric(f"prl/{n}", sum(vals) / len(vals))
