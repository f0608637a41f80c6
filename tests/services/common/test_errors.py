"""One error body: every path that can refuse a request answers with :class:`ErrorBody`."""

import asyncio

import httpx
from fastapi import APIRouter
from pydantic import BaseModel

from services.common.app import create_service_app
from services.common.errors import ERROR_SCHEMA, ErrorBody
from services.common.settings import ServiceSettings
from services.reward.app import create_app as reward_app
from services.reward.settings import RewardSettings


class Item(BaseModel):
    n: int


def _app():
    router = APIRouter()

    @router.post("/echo")
    async def echo(item: Item) -> Item:
        return item

    @router.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("bug")

    return create_service_app(
        name="t", settings=ServiceSettings(max_body_bytes=1024), routers=[router]
    )


async def _calls(app, requests):
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return [await c.request(m, u, **kw) for m, u, kw in requests]


def _check(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status
    body = ErrorBody.model_validate_json(r.content)  # exactly the shared shape, nothing else
    assert body.model_dump() == r.json()
    assert body.error.code == code
    assert body.error.request_id == r.headers["x-request-id"]


def test_handlers_and_middleware_answer_the_same_body():
    got = asyncio.run(
        _calls(
            _app(),
            [
                ("POST", "/echo", {"json": {"n": "x"}}),  # exception handler
                ("GET", "/nowhere", {}),  # HTTPException handler
                ("POST", "/echo", {"content": b"x" * 5000}),  # the ASGI middleware itself
                ("GET", "/boom", {}),  # the catch-all 500 handler
            ],
        )
    )
    for r, (status, code) in zip(
        got,
        [(422, "validation_error"), (404, "not_found"), (413, "body_too_large"), (500, "internal")],
        strict=True,
    ):
        _check(r, status, code)


def test_reward_service_errors_use_the_same_body_and_the_schema_documents_it():
    app = reward_app(RewardSettings())
    body = {"reward": "no_such_preset", "samples": []}
    (r,) = asyncio.run(_calls(app, [("POST", "/v1/score", {"json": body})]))
    assert r.status_code == 422
    ErrorBody.model_validate_json(r.content)
    assert app.openapi()["components"]["schemas"]["ErrorBody"] == ERROR_SCHEMA
    assert ERROR_SCHEMA["required"] == ["error"]
    assert ERROR_SCHEMA["properties"]["error"]["required"] == ["code", "message", "request_id"]
