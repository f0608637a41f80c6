"""``create_app``: the reward service (uvicorn factory, ``prl serve reward``).

Readiness (``/readyz``): the scoring library is in-process, so the service itself is ready
once started; for each component named in ``PRL_REWARD_READY_COMPONENTS`` that declares
``ready(context)`` (e.g. DEVA ``alignment`` checking the embedding service) it also runs a
check named ``component:<name>``. Opt-in, so that a deployment without an embedding service
is still ready for every other reward.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from services.common.app import ReadyCheck, create_service_app
from services.common.errors import error_response
from services.common.openapi import name_choices
from services.reward.api import router
from services.reward.limits import LimitExceeded
from services.reward.scoring import ScoringContext, components
from services.reward.scoring.base import advantages, aggregators, presets
from services.reward.scoring.spec import SpecError
from services.reward.settings import RewardSettings


def _component_check(name: str) -> ReadyCheck:
    async def check(app: FastAPI) -> str | None:
        ready = components.get(name).ready
        return None if ready is None else await ready(app.state.context)

    return check


def ready_checks(settings: RewardSettings) -> dict[str, ReadyCheck]:
    """The dependency checks of ``settings.ready_components`` (name → check)."""
    checks: dict[str, ReadyCheck] = {}
    for name in settings.ready_components:
        if components.get(name).ready is not None:  # unknown name → "did you mean"
            checks[f"component:{name}"] = _component_check(name)
    return checks


def _registered_names(schema: dict) -> None:
    """Preset, component, aggregator and estimator names are enums in the OpenAPI document."""
    name_choices(schema, "reward", presets.names())
    name_choices(schema, "name", components.names(), within="ComponentRef")
    name_choices(schema, "method", aggregators.names(), within="AggregateRef")
    name_choices(schema, "advantage", advantages.names())


def create_app(settings: RewardSettings | None = None) -> FastAPI:
    settings = settings or RewardSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.embedding_timeout_s) as http:
            app.state.context = ScoringContext(settings=settings, http=http)
            yield

    app = create_service_app(
        name="reward",
        settings=settings,
        routers=[router],
        lifespan=lifespan,
        ready_checks=ready_checks(settings),
        description="Exact perception rewards for GRPO-family training (wire contract v1).",
        openapi_patch=_registered_names,
    )
    app.state.context = ScoringContext(settings=settings)
    app.state.reward_failures = Counter(
        "prl_reward_failures",
        "completions whose answer (component='answer') or a component failed, by error code",
        ["component", "code"],
        registry=app.state.metrics.registry,
    )

    @app.exception_handler(SpecError)
    async def _spec(request: Request, exc: SpecError) -> JSONResponse:
        return error_response(request, 422, "invalid_reward", str(exc))

    @app.exception_handler(LimitExceeded)
    async def _limit(request: Request, exc: LimitExceeded) -> JSONResponse:
        return error_response(request, 413, "limit_exceeded", str(exc))

    return app
