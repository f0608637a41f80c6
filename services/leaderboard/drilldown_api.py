"""Routes behind the page's drill-down; each calls one function of ``drilldown``."""

from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse

from schemas.leaderboard import INT32_MAX, NO_NUL, RewardBreakdown, RunExtrasList, SampleDetail
from services.common.auth import require_scope
from services.common.params import WHOLE
from services.leaderboard import drilldown
from services.leaderboard.api import ERRORS, Id, http_errors
from services.leaderboard.deps import DbSession
from services.store.repository import NotFoundError, get_run

router = APIRouter(
    prefix="/v1", tags=["leaderboard"], dependencies=[Depends(require_scope("read"))]
)
SampleId = Annotated[str, Path(min_length=1, max_length=255, pattern=NO_NUL)]


@router.get(
    "/runs/{run_id}/reward",
    response_model=RewardBreakdown | None,
    responses=ERRORS,
    operation_id="run_reward",
)
def run_reward(run_id: Id, s: DbSession) -> RewardBreakdown | None:
    """The run's reward spec with each component's weight and range (null: not recorded)."""
    with http_errors():
        return drilldown.reward_breakdown((get_run(s, run_id).config or {}).get("reward"))


@router.get(
    "/runs/{run_id}/samples/{sample_id}",
    response_model=SampleDetail,
    responses=ERRORS,
    operation_id="run_sample",
)
def run_sample(run_id: Id, sample_id: SampleId, s: DbSession) -> SampleDetail:
    with http_errors():
        return drilldown.sample_detail(s, run_id, sample_id)


@router.get(
    "/runs/{run_id}/samples/{sample_id}/images/{index}",
    responses={**ERRORS, 200: {"content": {"image/png": {}}}},
    operation_id="run_sample_image",
    response_class=FileResponse,
)
def run_sample_image(
    run_id: Id,
    sample_id: SampleId,
    index: Annotated[int, Path(ge=0, le=63), WHOLE],
    s: DbSession,
) -> FileResponse:
    with http_errors():
        path = drilldown.sample_image(s, run_id, sample_id, index)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media)


@router.get("/run-extras", response_model=RunExtrasList, operation_id="run_extras")
def run_extras(
    s: DbSession,
    run_id: Annotated[list[int], Query(max_length=500, description="run ids")],
) -> RunExtrasList:
    """Per run: every metric, the reward spec and the training job (for leaderboard rows)."""
    ids = [i for i in run_id if 1 <= i <= INT32_MAX]
    try:
        return RunExtrasList(runs=drilldown.run_extras(s, ids))
    except NotFoundError:  # pragma: no cover - run_extras skips unknown ids
        return RunExtrasList(runs=[])
