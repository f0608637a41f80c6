"""App factory shared by every service.

``create_service_app`` gives each service the same skeleton: liveness (``/healthz``: the
process answers), readiness (``/readyz``: 200 only when every dependency check passes and
the server is not draining, else 503 naming what failed), Prometheus ``/metrics``, the
:class:`GuardMiddleware` limits, and one error body for every failure:
``{"error": {"code", "message", "request_id"}}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.errors import error_response, request_id_of
from services.common.lifecycle import DRAINING, hook_uvicorn_signals
from services.common.metrics import ServiceMetrics
from services.common.middleware import GuardMiddleware
from services.common.openapi import allowed_methods, describe
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

ReadyCheck = Callable[[FastAPI], Awaitable[str | None]]
"""Returns None when the dependency is ready, else a short reason."""


@dataclass
class ServiceState:
    started: bool = False
    shutting_down: bool = False
    checks: dict[str, ReadyCheck] = field(default_factory=dict)

    @property
    def draining(self) -> bool:
        """True from SIGTERM (see ``lifecycle``) or from the start of the lifespan shutdown."""
        return self.shutting_down or DRAINING.is_set()


def format_validation_errors(errors: Sequence[dict]) -> str:
    """``samples[3].frame.image_size: required when …`` — one line per error, body prefix dropped."""
    lines = []
    for err in errors:
        loc = [p for p in err.get("loc", ()) if p != "body"]
        path = ""
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{path or 'body'}: {msg}")
    return "; ".join(lines)


def create_service_app(
    *,
    name: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    ready_checks: dict[str, ReadyCheck] | None = None,
    version: str = "1",
    description: str = "",
    unavailable_errors: Sequence[type[Exception]] = (),
    openapi_patch: Callable[[dict], None] | None = None,
) -> FastAPI:
    """The service skeleton around ``routers``.

    ``unavailable_errors``: exception types that mean a dependency (the SQL store) is down
    or unreachable; a route raising one answers 503 ``store_unavailable`` + ``Retry-After``
    instead of a 500, since the request may well succeed once the dependency is back.
    ``openapi_patch``: edits the OpenAPI document once it is built (after
    :func:`services.common.openapi.describe`), for what only the service knows.
    """
    state = ServiceState(checks=dict(ready_checks or {}))
    metrics = ServiceMetrics(name)

    @asynccontextmanager
    async def outer(app: FastAPI) -> AsyncIterator[None]:
        state.shutting_down = False
        metrics.draining.set(0)
        hook_uvicorn_signals(settings.drain_delay_s)
        if lifespan is None:
            state.started = True
            yield
        else:
            async with lifespan(app):
                state.started = True
                yield
        state.shutting_down = True
        metrics.draining.set(1)

    app = FastAPI(
        title=f"perception-rl {name}", version=version, description=description, lifespan=outer
    )
    app.state.settings = settings
    app.state.service = state
    app.state.metrics = metrics

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(
            request, 422, "validation_error", format_validation_errors(exc.errors())
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            409: "conflict",
            413: "too_large",
            429: "rate_limited",
            503: "unavailable",
        }.get(exc.status_code, f"http_{exc.status_code}")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        return error_response(request, exc.status_code, code, str(exc.detail), headers=headers)

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable in %s: %r", request.url.path, exc)
        return error_response(
            request,
            503,
            "store_unavailable",
            f"the result store is unavailable ({type(exc).__name__}); nothing was written, "
            f"retry after {settings.retry_after_s} s",
            headers={"Retry-After": str(settings.retry_after_s)},
        )

    for exc_type in unavailable_errors:
        app.add_exception_handler(exc_type, _unavailable)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's ServerErrorMiddleware, outside GuardMiddleware, sends this answer and
        # then uvicorn closes the connection: say so (and echo the request id ourselves).
        log.exception("unhandled error in %s", request.url.path)
        rid = request_id_of(request)
        return error_response(
            request,
            500,
            "internal",
            f"internal error ({type(exc).__name__}); this is a bug, please report it",
            headers={"Connection": "close", "X-Request-ID": rid},
        )

    @app.get("/healthz", tags=["ops"], operation_id="healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": name}

    @app.get(
        "/readyz",
        tags=["ops"],
        operation_id="readyz",
        responses={503: {"description": "not ready"}},
    )
    async def readyz() -> JSONResponse:
        failing = await readiness(app)
        body = {"ready": not failing, "service": name, "failing": failing}
        return JSONResponse(body, 200 if not failing else 503)

    @app.get("/metrics", tags=["ops"], operation_id="metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = describe(FastAPI.openapi(app), settings)
            if openapi_patch is not None:
                openapi_patch(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(GuardMiddleware, settings=settings, metrics=metrics, state=state)
    return app


async def readiness(app: FastAPI) -> dict[str, str]:
    """Name → reason for every failing readiness condition (empty when ready)."""
    state: ServiceState = app.state.service
    failing: dict[str, str] = {}
    if not state.started:
        failing["startup"] = "still starting"
    if state.draining:
        failing["draining"] = "shutting down"
    names = list(state.checks)
    results = await asyncio.gather(*(state.checks[n](app) for n in names), return_exceptions=True)
    for n, r in zip(names, results, strict=True):
        if isinstance(r, BaseException):
            failing[n] = f"{type(r).__name__}: {r}"
        elif r is not None:
            failing[n] = r
    return failing
