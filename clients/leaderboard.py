"""Typed clients of the leaderboard service: suites, runs, leaderboards, run upload.

``upload_run`` writes with an ``Idempotency-Key`` (generated once, or given) that is resent
unchanged on every retry, so a retried upload after a lost response replays the stored answer
instead of writing twice; the key needs a ``write``-scoped bearer key (``api_key=`` or
``PRL_API_KEY``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import httpx

from clients.base import AsyncAPIClient, Call, SyncAPIClient, get_call, post_call
from schemas.leaderboard import (
    Leaderboard,
    Page,
    RunDetail,
    RunStatus,
    RunSummary,
    RunUpload,
    RunUploadResult,
    SuiteList,
)

RunPage = Page[RunSummary]

UPLOAD_SECONDS_PER_MIB = 2.0
"""Extra read/write time an upload gets per MiB of body, on top of the client's timeout: a
server validates and stores a run at well over 0.5 MiB/s (a 16 MiB, 100 000-prediction
upload in a few seconds on SQLite), so a slow, busy server still answers inside it."""


def upload_timeout_s(n_bytes: int, base_s: float | None = 60.0) -> float | None:
    """Read/write timeout of an upload of ``n_bytes``: ``base_s + 2 s/MiB`` (None stays None)."""
    if base_s is None:
        return None
    return base_s + UPLOAD_SECONDS_PER_MIB * n_bytes / 2**20


def _upload_timeout(client: SyncAPIClient | AsyncAPIClient, n_bytes: int) -> httpx.Timeout:
    t = client.timeout
    return httpx.Timeout(
        connect=t.connect,
        pool=t.pool,
        read=upload_timeout_s(n_bytes, t.read),
        write=upload_timeout_s(n_bytes, t.write),
    )


def _params(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def suites_call() -> Call[SuiteList]:
    return get_call("/v1/suites", SuiteList)


def runs_call(
    *,
    suite: str | None = None,
    version: str | None = None,
    model: str | None = None,
    status: RunStatus | None = None,
    limit: int | None = None,
    cursor: int | None = None,
) -> Call[RunPage]:
    """One page of runs, newest first; pass ``next_cursor`` back as ``cursor``."""
    params = _params(
        suite=suite, version=version, model=model, status=status, limit=limit, cursor=cursor
    )
    return get_call("/v1/runs", RunPage, **params)


def run_call(
    run_id: int, *, limit: int | None = None, cursor: int | None = None
) -> Call[RunDetail]:
    return get_call(f"/v1/runs/{run_id}", RunDetail, **_params(limit=limit, cursor=cursor))


def leaderboard_call(
    suite: str, metric: str, *, version: str | None = None, limit: int | None = None
) -> Call[Leaderboard]:
    params = _params(suite=suite, metric=metric, version=version, limit=limit)
    return get_call("/v1/leaderboard", Leaderboard, **params)


def upload_call(
    client: SyncAPIClient | AsyncAPIClient,
    run: RunUpload | Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
) -> Call[RunUploadResult]:
    """``POST /v1/runs`` with an Idempotency-Key reused across retries and a timeout that grows
    with the body (:func:`upload_timeout_s`, from ``client``'s timeout)."""
    body = run if isinstance(run, RunUpload) else RunUpload.model_validate(run)
    call = post_call("/v1/runs", body, RunUploadResult, idempotency_key=idempotency_key)
    return replace(call, timeout=_upload_timeout(client, len(call.content or b"")))


class _LeaderboardMixin:
    env_url = "PRL_LEADERBOARD_URL"
    default_url = "http://127.0.0.1:8003"


class LeaderboardClient(_LeaderboardMixin, SyncAPIClient):
    """Blocking leaderboard client."""

    def suites(self) -> SuiteList:
        return self.send(suites_call())

    def runs(
        self,
        *,
        suite: str | None = None,
        version: str | None = None,
        model: str | None = None,
        status: RunStatus | None = None,
        limit: int | None = None,
        cursor: int | None = None,
    ) -> RunPage:
        """One page of runs, newest first; pass ``next_cursor`` back as ``cursor``."""
        return self.send(
            runs_call(
                suite=suite, version=version, model=model, status=status, limit=limit, cursor=cursor
            )
        )

    def iter_runs(self, **filters: Any) -> Iterator[RunSummary]:
        """Every run matching ``filters``, following the cursor across pages."""
        cursor = None
        while True:
            page = self.runs(**filters, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def run(self, run_id: int, *, limit: int | None = None, cursor: int | None = None) -> RunDetail:
        return self.send(run_call(run_id, limit=limit, cursor=cursor))

    def leaderboard(
        self, suite: str, metric: str, *, version: str | None = None, limit: int | None = None
    ) -> Leaderboard:
        return self.send(leaderboard_call(suite, metric, version=version, limit=limit))

    def upload_run(
        self, run: RunUpload | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> RunUploadResult:
        """``POST /v1/runs`` with an Idempotency-Key reused across retries.

        The timeout grows with the body (:func:`upload_timeout_s`), so a maximum-size upload
        is not abandoned, and then retried, while the server is still writing it.
        """
        return self.send(upload_call(self, run, idempotency_key=idempotency_key))


class AsyncLeaderboardClient(_LeaderboardMixin, AsyncAPIClient):
    """Asyncio leaderboard client."""

    async def suites(self) -> SuiteList:
        return await self.send(suites_call())

    async def runs(self, **filters: Any) -> RunPage:
        return await self.send(runs_call(**filters))

    async def leaderboard(
        self, suite: str, metric: str, *, version: str | None = None, limit: int | None = None
    ) -> Leaderboard:
        return await self.send(leaderboard_call(suite, metric, version=version, limit=limit))

    async def upload_run(
        self, run: RunUpload | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> RunUploadResult:
        return await self.send(upload_call(self, run, idempotency_key=idempotency_key))
