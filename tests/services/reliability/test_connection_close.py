"""Every 5xx says ``Connection: close``, so a keep-alive client never reuses a connection the
server is closing (before this, after a 500 uvicorn dropped the connection without saying so,
and 22 of 30 follow-up requests on it failed with ReadError / RemoteProtocolError).

Real uvicorn on loopback, one ``httpx.Client`` (keep-alive pool): a route that raises (500),
the guard's 503 ``overloaded`` and 504 ``timeout`` each come with ``Connection: close``, and
the request sent right after each on the same client succeeds, 30 times over.
"""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from fastapi import APIRouter

from services.common.app import create_service_app
from services.common.settings import ServiceSettings
from services.stack import serve_in_thread

router = APIRouter()


@router.get("/boom")
async def boom() -> dict:
    raise RuntimeError("a bug")


@router.get("/sleep")
async def sleep(seconds: float = 0.0) -> dict:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


def serve(**settings):
    app = create_service_app(
        name="conn-test", settings=ServiceSettings(**settings), routers=[router]
    )
    return serve_in_thread(app)


@pytest.fixture(scope="module")
def url():
    with serve(request_timeout_s=0.3) as base:
        yield base


@pytest.fixture(scope="module")
def one_slot_url():
    with serve(max_concurrency=1) as base:
        yield base


def test_500_closes_the_connection_and_the_next_request_succeeds(url):
    with httpx.Client(base_url=url, timeout=5) as client:
        for _ in range(30):
            r = client.get("/boom")
            assert r.status_code == 500 and r.headers["connection"] == "close"
            assert r.json()["error"]["code"] == "internal" and r.headers["x-request-id"]
            assert client.get("/healthz").status_code == 200  # no ReadError here


def test_504_closes_the_connection_and_the_next_request_succeeds(url):
    with httpx.Client(base_url=url, timeout=5) as client:
        for _ in range(3):
            r = client.get("/sleep", params={"seconds": 1})  # past request_timeout_s
            assert r.status_code == 504 and r.headers["connection"] == "close"
            assert client.get("/healthz").status_code == 200


def test_503_overloaded_closes_the_connection_and_the_next_request_succeeds(one_slot_url):
    with (
        httpx.Client(base_url=one_slot_url, timeout=5) as client,
        httpx.Client(base_url=one_slot_url, timeout=5) as other,
    ):
        hold = threading.Thread(target=lambda: other.get("/sleep", params={"seconds": 0.5}))
        hold.start()
        for _ in range(100):  # the one slot is taken while `hold` sleeps
            r = client.get("/sleep")
            if r.status_code == 503:
                break
        hold.join()
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
        assert r.headers["connection"] == "close" and r.headers["retry-after"] == "1"
        assert client.get("/healthz").status_code == 200


def test_2xx_keeps_the_connection_alive(url):
    with httpx.Client(base_url=url, timeout=5) as client:
        r = client.get("/healthz")
        assert r.status_code == 200 and "connection" not in r.headers
