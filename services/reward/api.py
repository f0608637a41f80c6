"""Reward service routes (thin: each calls one pure function of ``scoring``)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import Counter

from schemas.reward import (
    AggregateRequest,
    AggregateResponse,
    ErrorInfo,
    GroupsRequest,
    GroupsResponse,
    OpenRLHFRequest,
    OpenRLHFResponse,
    RewardsCatalog,
    SampleResult,
    ScoreRequest,
    ScoreResponse,
)
from services.common.auth import require_scope
from services.reward import openrlhf
from services.reward.deps import Context, Failures, Settings
from services.reward.limits import check_groups, check_samples, request_limits
from services.reward.scoring import ascore_groups, ascore_samples, compiled
from services.reward.scoring.catalog import aggregate_rows, catalog
from services.reward.scoring.pipeline import gc_paused


class _OrjsonRequest(Request):
    """A request whose JSON body is decoded with orjson (several times faster than the
    stdlib ``json`` Starlette uses; ``orjson.JSONDecodeError`` subclasses
    ``json.JSONDecodeError``, so FastAPI still answers 422 for malformed JSON)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class OrjsonRoute(APIRoute):
    """Route class that hands its endpoint an :class:`_OrjsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            # the whole request (decode, validation, scoring, encoding) without collector
            # passes over its short-lived objects (pipeline.gc_paused explains why)
            with gc_paused():
                return await handler(_OrjsonRequest(request.scope, request.receive))

        return handle


router = APIRouter(
    tags=["reward"], dependencies=[Depends(require_scope("read"))], route_class=OrjsonRoute
)

ERRORS = {
    413: {"description": "a request limit (PRL_REWARD_MAX_*) was exceeded"},
    422: {"description": "invalid request, unknown reward name or bad parameter"},
}


def _count(failures: Counter, results: list[SampleResult]) -> None:
    """Prometheus: sample failures by code, component failures by component and code."""
    for r in results:
        _count_one(failures, r.error, r.component_errors)


def _count_one(failures: Any, error: ErrorInfo | None, component_errors: dict) -> None:
    if error is not None:
        failures.labels("answer", error.code).inc()
    for name, err in component_errors.items():
        failures.labels(name, err.code).inc()


def _json(model: ScoreResponse | GroupsResponse) -> Response:
    """The response model's JSON, encoded once by pydantic's serializer (FastAPI would
    validate it again, turn it into Python objects and encode those with ``json``)."""
    return Response(model.model_dump_json(), media_type="application/json")


@router.post("/v1/score", operation_id="score", responses=ERRORS, response_model=ScoreResponse)
async def score(req: ScoreRequest, s: Settings, context: Context, failures: Failures) -> Response:
    """Score completions against their solutions with a preset or spec."""
    check_samples(req.samples, s)
    results = await ascore_samples(req.samples, req.reward, context, max_boxes=s.max_boxes)
    _count(failures, results)
    return _json(ScoreResponse.model_construct(results=results, reward=compiled(req.reward).spec))


@router.post(
    "/v1/score/groups", operation_id="score_groups", responses=ERRORS, response_model=GroupsResponse
)
async def score_groups(
    req: GroupsRequest, s: Settings, context: Context, failures: Failures
) -> Response:
    """Score GRPO groups: rewards, advantages, components, std, zero-variance flag, stats."""
    check_groups(req.groups, s)
    out = await ascore_groups(req, context, max_boxes=s.max_boxes)
    for g in out.groups:
        for i, e in enumerate(g.errors):
            errs = {n: v[i] for n, v in g.component_errors.items() if v[i] is not None}
            _count_one(failures, e, errs)
    return _json(out)


@router.get("/v1/limits", operation_id="limits")
async def limits(s: Settings) -> dict[str, int]:
    """Request-size limits (413 above them); the SDK splits batches to fit ``max_samples``
    completions and ``max_body_bytes`` per request."""
    return request_limits(s)


@router.get("/v1/rewards", operation_id="rewards")
async def rewards() -> RewardsCatalog:
    """Registered components (with ranges and params), aggregators, estimators, presets."""
    return catalog()


@router.post("/v1/aggregate", operation_id="aggregate", responses=ERRORS)
async def aggregate(req: AggregateRequest) -> AggregateResponse:
    """Aggregate given component values with a spec (scaling by each component's range)."""
    return aggregate_rows(req)


@router.post("/get_reward", operation_id="openrlhf_get_reward", responses=ERRORS)
async def get_reward(
    req: OpenRLHFRequest, s: Settings, context: Context, failures: Failures
) -> OpenRLHFResponse:
    """OpenRLHF remote reward model (label format: ``services.reward.openrlhf``)."""
    results = await openrlhf.score(req, s, context)
    _count(failures, results)
    return openrlhf.response(results)
