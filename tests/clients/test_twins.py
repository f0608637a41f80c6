"""The sync and async clients share everything but the awaited call: for every public method
both send the same requests (method, path, query, body) and read the answer the same way."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from clients.embedding import AsyncEmbeddingClient, EmbeddingClient
from clients.leaderboard import AsyncLeaderboardClient, LeaderboardClient
from clients.reward import AsyncRewardClient, RewardClient
from clients.trainer import AsyncTrainerClient, TrainerClient

JOB = {
    "id": 3,
    "name": "j",
    "status": "completed",
    "launch": "cpu",
    "num_processes": 1,
    "config": {},
    "step": 2,
    "created_at": "2026-01-01T00:00:00Z",
}


def _outcome(fn):
    try:
        return ("ok", fn())
    except Exception as exc:  # the answer need not parse: both must fail alike
        return ("error", type(exc).__name__, str(exc))


def _answer(request: httpx.Request) -> httpx.Response:
    """Simple answers: the test compares what was sent and that both read them alike."""
    path = request.url.path
    if path == "/v1/limits":
        return httpx.Response(
            404, json={"error": {"code": "not_found", "message": "", "request_id": ""}}
        )
    if path.startswith("/v1/jobs") and path.endswith("/logs"):
        return httpx.Response(200, text="line\n")
    if path.startswith("/v1/jobs"):
        body = (
            {"jobs": [JOB], "total": 1} if path == "/v1/jobs" and request.method == "GET" else JOB
        )
        return httpx.Response(200, json=body)
    if path == "/healthz":
        return httpx.Response(200, json={"status": "ok"})
    return httpx.Response(200, json={})


def _record(seen: list):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(
            (
                request.method,
                request.url.path,
                sorted(request.url.params.multi_items()),
                json.loads(request.content) if request.content else None,
                request.headers.get("content-type"),
            )
        )
        return _answer(request)

    return handler


CASES = [
    (TrainerClient, AsyncTrainerClient, "submit", ({"max_steps": 1},), {"name": "x"}),
    (TrainerClient, AsyncTrainerClient, "jobs", (), {"limit": 5, "offset": 2}),
    (TrainerClient, AsyncTrainerClient, "job", (3,), {}),
    (TrainerClient, AsyncTrainerClient, "logs", (3,), {"lines": 7}),
    (TrainerClient, AsyncTrainerClient, "cancel", (3,), {}),
    (TrainerClient, AsyncTrainerClient, "wait", (3,), {"timeout_s": 1.0}),
    (LeaderboardClient, AsyncLeaderboardClient, "leaderboard", ("s", "m"), {"limit": 3}),
    (RewardClient, AsyncRewardClient, "healthz", (), {}),
    (
        RewardClient,
        AsyncRewardClient,
        "score",
        ([{"id": "a", "completion": "<answer>[0,0,1,1]</answer>", "solution": {"boxes": []}}],),
        {"reward": "dig"},
    ),
    (EmbeddingClient, AsyncEmbeddingClient, "embed", (), {"texts": ["a", "b"]}),
]


@pytest.mark.parametrize(("sync_cls", "async_cls", "method", "args", "kwargs"), CASES)
def test_sync_and_async_twins_send_the_same_requests(sync_cls, async_cls, method, args, kwargs):
    sent_sync: list = []
    sent_async: list = []
    with sync_cls("http://t", transport=httpx.MockTransport(_record(sent_sync))) as c:
        got_sync = _outcome(lambda: getattr(c, method)(*args, **kwargs))

    async def run():
        async with async_cls("http://t", transport=httpx.MockTransport(_record(sent_async))) as c:
            try:
                return ("ok", await getattr(c, method)(*args, **kwargs))
            except Exception as exc:  # the answer need not parse: both must fail alike
                return ("error", type(exc).__name__, str(exc))

    got_async = asyncio.run(run())
    assert sent_sync and sent_sync == sent_async
    assert got_sync == got_async
    if method in ("jobs", "job", "logs", "cancel", "wait", "healthz"):
        assert got_sync[0] == "ok", got_sync
