"""Pure-ASGI guard in front of every service.

In order: request id (``X-Request-ID`` echoed or generated; ``Connection: close`` added to
every 5xx, see :func:`with_guard_headers`); refuse with 503 while draining;
refuse with 503 + ``Retry-After`` when ``max_concurrency`` requests are already in flight
(a fast answer instead of unbounded latency); 413 when ``Content-Length`` or the streamed body
exceeds ``max_body_bytes`` — checked *before* the body is parsed; 504 after
``request_timeout_s``; Prometheus count/latency by route template and status.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.errors import error_bytes
from services.common.metrics import ServiceMetrics
from services.common.settings import ServiceSettings

_PROBES = {"/healthz", "/readyz", "/metrics"}
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
"""Metric labels take these methods as sent; any other (a client may send any token) → OTHER."""


def with_guard_headers(headers: Iterable[tuple[bytes, bytes]], status: int, rid: str) -> list:
    """``headers`` plus ``X-Request-ID``, and ``Connection: close`` on any 5xx.

    uvicorn closes a keep-alive connection after a response whose app raised (a 500), and a
    draining server closes them all; a client that is not told reuses the dead connection and
    its next request fails with a transport error the server never saw. Saying
    ``Connection: close`` on every 5xx makes uvicorn close it deliberately after the answer and
    tells the client to open a fresh one (RFC 9112 §9.6).
    """
    out = [*headers, (b"x-request-id", rid.encode())]
    if status >= 500 and not any(k.lower() == b"connection" for k, _ in out):
        out.append((b"connection", b"close"))
    return out


class GuardMiddleware:
    def __init__(
        self, app: ASGIApp, settings: ServiceSettings, metrics: ServiceMetrics, state: Any
    ) -> None:
        self.app, self.settings, self.metrics, self.state = app, settings, metrics, state
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _header(scope, b"x-request-id") or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        path = scope.get("path", "")
        probe = path in _PROBES
        started = {"status": 0}
        refused = False  # we answered ourselves (body too large); drop what the app sends

        async def send_wrapped(message: Message) -> None:
            if refused:
                return
            if message["type"] == "http.response.start":
                started["status"] = message["status"]
                message["headers"] = with_guard_headers(
                    message.get("headers", []), message["status"], rid
                )
            await send(message)

        async def reply(status: int, code: str, msg: str, headers: list | None = None) -> None:
            body = error_bytes(code, msg, rid)
            hdrs = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send_wrapped(
                {"type": "http.response.start", "status": status, "headers": hdrs + (headers or [])}
            )
            await send({"type": "http.response.body", "body": body})

        retry = [(b"retry-after", str(self.settings.retry_after_s).encode())]
        if not probe and self.state.draining:
            self.metrics.rejected.labels("draining").inc()
            await reply(
                503, "draining", "the server is shutting down; retry on another replica", retry
            )
            return
        if not probe and self.in_flight >= self.settings.max_concurrency:
            self.metrics.rejected.labels("overloaded").inc()
            await reply(
                503,
                "overloaded",
                f"{self.in_flight} requests in flight (limit {self.settings.max_concurrency}); retry later",
                retry,
            )
            return
        limit = self.settings.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and not (
            declared.isascii() and declared.isdigit() and int(declared) <= limit
        ):
            self.metrics.rejected.labels("too_large").inc()
            await reply(
                413,
                "body_too_large",
                f"request body of {declared} bytes exceeds the limit of {limit} bytes (MAX_BODY_BYTES)",
            )
            return

        received = 0

        async def receive_limited() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not refused:
                    # Answer 413 now and tell the app the client went away, so it stops reading.
                    if not started["status"]:
                        self.metrics.rejected.labels("too_large").inc()
                        await reply(
                            413,
                            "body_too_large",
                            f"request body exceeds the limit of {limit} bytes (MAX_BODY_BYTES)",
                        )
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        t0 = time.perf_counter()
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        try:
            await asyncio.wait_for(
                self.app(scope, receive_limited, send_wrapped), self.settings.request_timeout_s
            )
        except TimeoutError:
            if not started["status"]:
                await reply(
                    504, "timeout", f"request took longer than {self.settings.request_timeout_s} s"
                )
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.set(self.in_flight)
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            method = method if method in _METHODS else "OTHER"  # bounded label values
            status = str(started["status"] or 500)
            self.metrics.requests.labels(label, method, status).inc()
            self.metrics.latency.labels(label, method, status).observe(time.perf_counter() - t0)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None
