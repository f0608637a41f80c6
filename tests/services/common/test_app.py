import asyncio

import httpx
import pytest
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from services.common.app import create_service_app, format_validation_errors
from services.common.auth import DEV_API_KEY, require_scope
from services.common.settings import ServiceSettings


class Item(BaseModel):
    n: int


def make_app(**overrides):
    router = APIRouter()

    @router.post("/echo")
    async def echo(item: Item) -> Item:
        return item

    @router.post("/write", dependencies=[Depends(require_scope("write"))])
    async def write() -> dict:
        return {"ok": True}

    @router.get("/slow")
    async def slow() -> dict:
        await asyncio.sleep(0.5)
        return {}

    async def db_check(app):
        return overrides.pop("db_reason", None)

    settings = ServiceSettings(**overrides)
    return create_service_app(
        name="t", settings=settings, routers=[router], ready_checks={"db": db_check}
    )


async def call(app, method, url, **kw):
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.request(method, url, **kw)


def test_validation_error_names_the_field():
    r = asyncio.run(call(make_app(), "POST", "/echo", json={"n": "x"}))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    assert err["message"].startswith("n: ")
    assert r.headers["x-request-id"] == err["request_id"]


def test_format_validation_errors_paths():
    msg = format_validation_errors(
        [{"loc": ("body", "samples", 3, "frame", "image_size"), "msg": "Value error, required"}]
    )
    assert msg == "samples[3].frame.image_size: required"


def test_body_limit_by_content_length_is_413():
    r = asyncio.run(call(make_app(max_body_bytes=1024), "POST", "/echo", content=b"x" * 5000))
    assert r.status_code == 413
    assert "1024" in r.json()["error"]["message"]


def test_streamed_body_over_limit_is_413():
    async def gen():
        for _ in range(10):
            yield b"x" * 512

    r = asyncio.run(call(make_app(max_body_bytes=1024), "POST", "/echo", content=gen()))
    assert r.status_code == 413


def test_readiness_reports_failing_dependency():
    r = asyncio.run(call(make_app(db_reason="database unreachable"), "GET", "/readyz"))
    assert r.status_code == 503
    assert r.json()["failing"] == {"db": "database unreachable"}
    r = asyncio.run(call(make_app(), "GET", "/readyz"))
    assert r.status_code == 200


def test_writes_need_a_write_key():
    app = make_app()
    assert asyncio.run(call(app, "POST", "/write")).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert asyncio.run(call(app, "POST", "/write", headers=bad)).status_code == 403
    good = {"Authorization": f"Bearer {DEV_API_KEY}"}
    assert asyncio.run(call(app, "POST", "/write", headers=good)).status_code == 200


def test_configured_keys_replace_dev_key_and_scopes_matter():
    app = make_app(api_keys={"r": ["read"], "w": ["write"]})
    assert (
        asyncio.run(
            call(app, "POST", "/write", headers={"Authorization": f"Bearer {DEV_API_KEY}"})
        ).status_code
        == 403
    )
    assert (
        asyncio.run(call(app, "POST", "/write", headers={"Authorization": "Bearer r"})).status_code
        == 403
    )
    assert (
        asyncio.run(call(app, "POST", "/write", headers={"Authorization": "Bearer w"})).status_code
        == 200
    )


def test_prod_profile_refuses_to_start_without_write_key():
    with pytest.raises(ValueError, match="write-scoped key"):
        ServiceSettings(profile="prod")


def test_timeout_is_504():
    r = asyncio.run(call(make_app(request_timeout_s=0.05), "GET", "/slow"))
    assert r.status_code == 504


def test_overload_is_fast_503_with_retry_after():
    app = make_app(max_concurrency=1)

    async def run():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await asyncio.gather(c.get("/slow"), c.get("/slow"))

    codes = sorted(r.status_code for r in asyncio.run(run()))
    assert codes == [200, 503]


def test_metrics_count_requests_by_route():
    app = make_app()

    async def run():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                await c.post("/echo", json={"n": 1})
                return (await c.get("/metrics")).text

    text = asyncio.run(run())
    assert 'prl_http_requests_total{method="POST",route="/echo",status="200"} 1.0' in text
