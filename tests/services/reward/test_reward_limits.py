"""``GET /v1/limits`` of the reward service, read by the real SDK against the real app."""

from __future__ import annotations

import asyncio

import httpx

from clients.chunking import ServerLimits
from clients.reward import AsyncRewardClient
from services.reward.app import create_app
from services.reward.settings import RewardSettings

SOL = {"boxes": [[10.0, 10.0, 50.0, 50.0]]}
EXACT = "<think>t</think><answer>[[10, 10, 50, 50]]</answer>"


def test_sdk_reads_the_limits_and_splits_below_them():
    settings = RewardSettings(max_samples=3, max_body_bytes=200_000)
    app = create_app(settings)
    sent: list[tuple[str, int]] = []

    async def count(request: httpx.Request) -> None:
        sent.append((request.url.path, request.content.count(b'"completion"')))

    async def go():
        async with app.router.lifespan_context(app):
            t = httpx.ASGITransport(app=app)
            async with AsyncRewardClient("http://reward", transport=t) as rc:
                rc._http.event_hooks["request"].append(count)
                limits = await rc.server_limits("max_samples")
                out = await rc.score(
                    [{"id": f"s{k}", "completion": EXACT, "solution": SOL} for k in range(7)],
                    reward="dig",
                )
            async with httpx.AsyncClient(transport=t, base_url="http://reward") as raw:
                payload = (await raw.get("/v1/limits")).json()
        return limits, out, payload

    limits, out, payload = asyncio.run(go())
    assert limits == ServerLimits(max_items=3, max_body_bytes=200_000)
    assert payload == {
        "max_samples": 3,
        "max_group_size": settings.max_group_size,
        "max_completion_chars": settings.max_completion_chars,
        "max_boxes": settings.max_boxes,
        "max_body_bytes": 200_000,
    }
    # one limits request, then chunks of at most 3 — no 413 and no halving
    assert sent == [("/v1/limits", 0), ("/v1/score", 3), ("/v1/score", 3), ("/v1/score", 1)]
    assert [r.id for r in out.results] == [f"s{k}" for k in range(7)]
    assert all(r.reward == 3.0 for r in out.results)
