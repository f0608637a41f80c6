"""Scoring a batch of completions: through the reward service over HTTP, or in-process.

Both scorers send the same :class:`schemas.reward.Sample` objects and get the same
:class:`schemas.reward.SampleResult` objects back; the in-process one calls the functions
the service's ``POST /v1/score`` route calls (``resolve_reward`` + ``score_samples``), so a
benchmark scored either way gives identical numbers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from schemas.reward import RewardRef, Sample, SampleResult, ScoreResponse


class Scorer(Protocol):
    def score(self, samples: Sequence[Sample], reward: RewardRef) -> list[SampleResult]: ...

    def describe(self) -> dict[str, Any]: ...


class InProcessScorer:
    """``ascore_samples(samples, resolve_reward(reward))`` of ``services.reward.scoring``: the
    functions behind ``POST /v1/score`` (async, so batch components such as ``alignment`` work
    too; they reach the embedding service through ``context``)."""

    def __init__(self, context: Any = None) -> None:
        self.context = context

    def score(self, samples: Sequence[Sample], reward: RewardRef) -> list[SampleResult]:
        import asyncio

        from services.reward.scoring import ascore_samples, resolve_reward

        if not samples:
            return []
        return list(
            asyncio.run(ascore_samples(list(samples), resolve_reward(reward), self.context))
        )

    def describe(self) -> dict[str, Any]:
        return {"scorer": "in-process"}


class HttpScorer:
    """``POST {base_url}/v1/score``; ``client`` may be any ``httpx.Client`` (a test client too).

    Large batches are sent in chunks of ``max_samples`` (the service's request limit).
    """

    def __init__(
        self,
        base_url: str = "http://localhost:8001",
        *,
        api_key: str | None = None,
        client: httpx.Client | None = None,
        timeout: float = 60.0,
        max_samples: int = 512,
        retries: int = 5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(
            base_url=self.base_url, timeout=timeout, headers=headers
        )
        if client is not None and headers:
            self.client.headers.update(headers)
        self.max_samples = max_samples
        self.retries = retries

    def score(self, samples: Sequence[Sample], reward: RewardRef) -> list[SampleResult]:
        out: list[SampleResult] = []
        ref = reward if isinstance(reward, str) else reward.model_dump(mode="json")
        for i in range(0, len(samples), self.max_samples):
            chunk = samples[i : i + self.max_samples]
            body = {
                "reward": ref,
                "samples": [s.model_dump(mode="json", exclude_none=True) for s in chunk],
            }
            resp = self._post(body)
            if resp.status_code >= 400:
                raise RuntimeError(f"reward service answered {resp.status_code}: {resp.text[:500]}")
            out.extend(ScoreResponse.model_validate(resp.json()).results)
        return out

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        """POST with retries on 503/429 (the service's concurrency limit), honouring
        ``Retry-After``, and on connection errors; other statuses are returned as they are."""
        for attempt in range(self.retries + 1):
            try:
                resp = self.client.post("/v1/score", json=body)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(backoff(attempt, None))
                continue
            if resp.status_code not in (429, 503) or attempt == self.retries:
                return resp
            time.sleep(backoff(attempt, resp.headers.get("retry-after")))
        raise AssertionError("unreachable")

    def describe(self) -> dict[str, Any]:
        return {"scorer": "http", "url": self.base_url}


def backoff(attempt: int, retry_after: str | None, cap: float = 30.0) -> float:
    """Seconds to wait: the server's ``Retry-After`` (seconds) if given, else 0.5·2^attempt."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), cap)
        except ValueError:
            pass
    return min(0.5 * 2**attempt, cap)
