"""Scoring a batch of completions: through the reward service over HTTP, or in-process.

Both scorers send the same :class:`schemas.reward.Sample` objects and get the same
:class:`schemas.reward.SampleResult` objects back; the in-process one calls the functions
the service's ``POST /v1/score`` route calls (``resolve_reward`` + ``score_samples``), so a
benchmark scored either way gives identical numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx

from clients.errors import APIStatusError
from clients.retry import RetryPolicy
from clients.reward import RewardClient
from schemas.reward import RewardRef, Sample, SampleResult


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
    """``POST {base_url}/v1/score`` through the SDK's :class:`clients.reward.RewardClient`.

    The client splits a large batch into requests within the server's limits (``max_samples``
    per request at most, tightened by ``GET /v1/limits`` where the server has it) and retries
    busy (429/503) or unreachable services up to ``retries`` times, honouring ``Retry-After``
    (capped at 30 s, as is the backoff). A 4xx/5xx answer left after retries raises
    ``RuntimeError("reward service answered <status>: …")``.

    For tests, ``client`` may be any ``httpx.Client`` (Starlette's ``TestClient`` too): requests
    are sent through it. ``transport`` and ``sleep`` go to the SDK client as they are.
    """

    def __init__(
        self,
        base_url: str = "http://localhost:8001",
        *,
        api_key: str | None = None,
        client: Any = None,
        timeout: float = 60.0,
        max_samples: int = 512,
        retries: int = 5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if client is not None:
            transport = _ThroughClient(client)
        self.client = RewardClient(
            self.base_url,
            api_key=api_key,
            timeout=timeout,
            chunk_size=max_samples,
            retry=RetryPolicy(max_retries=retries, max_backoff_s=30.0, max_retry_after_s=30.0),
            transport=transport,
            sleep=sleep,
        )

    def score(self, samples: Sequence[Sample], reward: RewardRef) -> list[SampleResult]:
        if not samples:
            return []
        try:
            return self.client.score(samples, reward=reward).results
        except APIStatusError as exc:
            raise RuntimeError(f"reward service answered {exc.status_code}: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        return {"scorer": "http", "url": self.base_url}


class _ThroughClient(httpx.BaseTransport):
    """Transport that sends every request through another client: an ``httpx.Client``, or
    Starlette's ``TestClient`` (built on the ``httpx2`` fork, so requests and responses are
    rebuilt rather than handed over). The inner client decodes the body, so the rebuilt
    response drops ``Content-Encoding`` / ``Content-Length`` (httpx sets the length anew)."""

    _DROP = frozenset({b"content-encoding", b"content-length"})

    def __init__(self, client: Any) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        inner = self.client.build_request(
            request.method, str(request.url), headers=request.headers.raw, content=request.read()
        )
        response = self.client.send(inner)
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in self._DROP]
        return httpx.Response(
            response.status_code, headers=headers, content=response.content, request=request
        )
