"""GuardMiddleware against malformed ``Content-Length`` headers, straight over ASGI (a real
server's parser would reject most of these first; the guard must not rely on it)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from services.common.metrics import ServiceMetrics
from services.common.middleware import GuardMiddleware
from services.common.settings import ServiceSettings


class State:
    draining = False


async def call(content_length: bytes) -> tuple[int, dict, bool]:
    reached = False

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        nonlocal reached
        reached = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = GuardMiddleware(app, ServiceSettings(), ServiceMetrics("t"), State())
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "headers": [(b"content-length", content_length)],
    }
    await guard(scope, receive, send)
    body = orjson.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    return sent[0]["status"], body, reached


@pytest.mark.parametrize(
    "value", [b"\xb2", b"\xb9\xb2", b"-1", b"1e3", b" 12", b"0x10", b"99999999999999999999999"]
)
def test_malformed_or_huge_content_length_is_413_not_a_crash(value):
    status, body, reached = asyncio.run(call(value))
    assert status == 413 and body["error"]["code"] == "body_too_large"
    assert not reached  # refused before the app saw the request


def test_a_sane_content_length_passes():
    status, _, reached = asyncio.run(call(b"2"))
    assert status == 200 and reached
