"""Routes of the leaderboard service; each calls one function of ``queries``/``uploads``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from schemas.leaderboard import (
    INT32_MAX,
    NO_NUL,
    Leaderboard,
    Page,
    RunDetail,
    RunStatus,
    RunSummary,
    RunUpload,
    RunUploadResult,
    SuiteList,
    TrainingCurves,
    TrainingJobView,
)
from services.common.auth import require_scope
from services.common.params import WHOLE
from services.leaderboard import queries, uploads
from services.leaderboard.deps import DbSession, SessionFactory, Settings
from services.leaderboard.settings import LeaderboardSettings
from services.store.repository import NotFoundError, StoreError

STATIC_DIR = FilePath(__file__).parent / "static"

router = APIRouter(
    prefix="/v1", tags=["leaderboard"], dependencies=[Depends(require_scope("read"))]
)
page_router = APIRouter(include_in_schema=False)
_bearer = HTTPBearer(auto_error=False)

Limit = Annotated[int, Query(ge=1, le=10_000, description="page size (capped by max_page)"), WHOLE]
Cursor = Annotated[
    int | None, Query(ge=0, le=INT32_MAX, description="next_cursor of the previous page"), WHOLE
]
Id = Annotated[int, Path(ge=1, le=INT32_MAX), WHOLE]
Name = Annotated[str | None, Query(max_length=255, pattern=NO_NUL)]
ERRORS = {404: {"description": "not found"}, 422: {"description": "invalid query"}}


def page_size(settings: LeaderboardSettings, limit: int) -> int:
    """The page size a query runs with: ``limit`` capped by ``max_page``."""
    return min(limit, settings.max_page)


@contextmanager
def http_errors() -> Iterator[None]:
    """Store/query exceptions → 404 (missing), 409 (conflicts with stored data), 422."""
    try:
        yield
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from exc
    except queries.QueryError as exc:
        raise HTTPException(422, str(exc)) from exc
    except StoreError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.get("/suites", response_model=SuiteList, operation_id="list_suites")
def list_suites(s: DbSession) -> SuiteList:
    return SuiteList(suites=queries.list_suites(s))


@router.get("/runs", response_model=Page[RunSummary], operation_id="list_runs")
def list_runs(
    settings: Settings,
    s: DbSession,
    suite: Name = None,
    version: Name = None,
    model: Name = None,
    status: RunStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[RunSummary]:
    return queries.list_runs(
        s,
        suite=suite,
        version=version,
        model=model,
        status=status,
        limit=page_size(settings, limit),
        cursor=cursor,
    )


@router.get("/runs/{run_id}", response_model=RunDetail, responses=ERRORS, operation_id="get_run")
def get_run(
    settings: Settings,
    run_id: Id,
    s: DbSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    errors_only: bool = False,
) -> RunDetail:
    with http_errors():
        return queries.run_detail(
            s, run_id, limit=page_size(settings, limit), cursor=cursor, errors_only=errors_only
        )


@router.get(
    "/leaderboard", response_model=Leaderboard, responses=ERRORS, operation_id="leaderboard"
)
def get_leaderboard(
    settings: Settings,
    s: DbSession,
    suite: Annotated[str, Query(min_length=1, max_length=255, pattern=NO_NUL)],
    metric: Annotated[str, Query(min_length=1, max_length=128, pattern=NO_NUL)],
    version: Annotated[
        str | None, Query(max_length=64, pattern=NO_NUL, description="default: newest")
    ] = None,
    limit: Limit = 100,
) -> Leaderboard:
    with http_errors():
        return queries.leaderboard(
            s, suite, metric, version=version, limit=page_size(settings, limit)
        )


@router.get(
    "/training-jobs", response_model=Page[TrainingJobView], operation_id="list_training_jobs"
)
def list_training_jobs(
    settings: Settings,
    s: DbSession,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[TrainingJobView]:
    return queries.list_training_jobs(s, limit=page_size(settings, limit), cursor=cursor)


@router.get(
    "/training-jobs/{job_id}/metrics",
    response_model=TrainingCurves,
    responses=ERRORS,
    operation_id="training_job_metrics",
)
def training_job_metrics(
    job_id: Id,
    s: DbSession,
    name: Annotated[list[str] | None, Query(description="only these series")] = None,
    max_points: Annotated[
        int | None,
        Query(ge=2, le=100_000, description="thin each series to this many points"),
        WHOLE,
    ] = None,
) -> TrainingCurves:
    with http_errors():
        return queries.training_curves(s, job_id, name, max_points=max_points)


@router.post(
    "/runs",
    response_model=RunUploadResult,
    status_code=201,
    dependencies=[Depends(require_scope("write"))],
    responses={
        200: {"description": "landed on an existing run (or an idempotent replay of one)"},
        401: {"description": "no API key"},
        403: {"description": "key lacks scope 'write'"},
        409: {"description": "conflicts with stored data (suite content, run key)"},
        422: {"description": "invalid body, or Idempotency-Key reused with another body"},
    },
    operation_id="upload_run",
)
def upload_run(
    factory: SessionFactory,
    body: RunUpload,
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="retries with the same key replay the first response",
        ),
    ] = None,
) -> JSONResponse:
    principal = uploads.principal_of(None if cred is None else cred.credentials)
    with http_errors():
        out = uploads.upload_idempotent(factory, body, principal=principal, key=idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if out.replayed else {}
    return JSONResponse(out.body, status_code=out.status_code, headers=headers)


@page_router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
