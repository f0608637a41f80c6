"""Trainer service: a job API over ``accelerate launch`` subprocesses (``prl serve trainer``).

``POST /v1/jobs`` (write key) validates a run config and queues it; ``GET /v1/jobs``,
``GET /v1/jobs/{id}`` (status, step, latest metrics), ``GET /v1/jobs/{id}/logs`` (tail, or
``follow=true`` to stream), ``POST /v1/jobs/{id}/cancel`` (write key). Job state and per-step
metrics live in the SQL store (``PRL_DATABASE_URL``), so the leaderboard page shows them; a
restarted service re-attaches to running jobs (see :mod:`trainer.jobs.manager`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas.jobs import JobList, JobSubmit, JobView
from services.common.app import create_service_app
from services.common.auth import require_scope
from services.common.catalog import default_port
from services.common.params import WHOLE, RowId
from services.common.settings import ServiceSettings
from trainer.jobs.manager import JobManager

log = logging.getLogger(__name__)


class TrainerServiceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PRL_TRAINER_", extra="ignore", frozen=True)

    port: int = Field(
        default=default_port("trainer"), ge=0, le=65535, description="TCP port (0: any free port)"
    )
    runs_dir: Path = Field(default=Path("runs"), description="one directory per job")
    reward_url: str | None = Field(
        default=None, description="reward service for jobs whose config has none"
    )
    max_running: int = Field(default=1, ge=1, description="jobs run at once (GPUs are not shared)")
    poll_interval_s: float = Field(
        default=1.0, gt=0, description="seconds between checks of running jobs and their metrics"
    )


router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def manager(request: Request) -> JobManager:
    return request.app.state.jobs


Manager = Annotated[JobManager, Depends(manager)]


def _job_or_404(mgr: JobManager, job_id: RowId) -> JobView:
    from services.store.repository import NotFoundError

    try:
        return mgr.get(job_id)
    except NotFoundError as err:
        raise HTTPException(404, str(err)) from None


@router.post(
    "",
    status_code=201,
    response_model=JobView,
    operation_id="submit_job",
    dependencies=[Depends(require_scope("write"))],
)
async def submit(req: JobSubmit, mgr: Manager) -> JobView:
    try:
        return await asyncio.to_thread(mgr.submit, req)
    except ValueError as err:
        raise HTTPException(422, f"config: {err}") from None


@router.get(
    "",
    response_model=JobList,
    operation_id="list_jobs",
    dependencies=[Depends(require_scope("read"))],
)
async def list_jobs(
    mgr: Manager,
    limit: Annotated[int, Query(ge=1, le=500), WHOLE] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62), WHOLE] = 0,
) -> JobList:
    jobs, total = await asyncio.to_thread(mgr.list, limit, offset)
    return JobList(jobs=jobs, total=total)


@router.get(
    "/{job_id}",
    response_model=JobView,
    operation_id="get_job",
    dependencies=[Depends(require_scope("read"))],
)
async def get_job(job_id: RowId, mgr: Manager) -> JobView:
    return await asyncio.to_thread(_job_or_404, mgr, job_id)


@router.get(
    "/{job_id}/logs",
    operation_id="job_logs",
    response_class=PlainTextResponse,
    dependencies=[Depends(require_scope("read"))],
)
async def job_logs(
    job_id: RowId,
    mgr: Manager,
    lines: Annotated[int, Query(ge=1, le=10_000), WHOLE] = 200,
    follow: bool = False,
):
    await asyncio.to_thread(_job_or_404, mgr, job_id)
    if not follow:
        return PlainTextResponse(mgr.logs(job_id, lines))
    return StreamingResponse(_follow(mgr, job_id), media_type="text/plain")


async def _follow(mgr: JobManager, job_id: RowId) -> AsyncIterator[bytes]:
    """Stream the log as it grows until the job ends."""
    path, pos = mgr.paths(job_id).log, 0
    while True:
        if path.exists():
            with open(path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
                pos += len(chunk)
            if chunk:
                yield chunk
        if mgr.get(job_id).status not in ("pending", "running"):
            return
        await asyncio.sleep(0.5)


@router.post(
    "/{job_id}/cancel",
    response_model=JobView,
    operation_id="cancel_job",
    dependencies=[Depends(require_scope("write"))],
)
async def cancel(job_id: RowId, mgr: Manager) -> JobView:
    await asyncio.to_thread(_job_or_404, mgr, job_id)
    return await asyncio.to_thread(mgr.cancel, job_id)


def create_app(
    settings: TrainerServiceSettings | None = None,
    *,
    database_url: str | None = None,
    **manager_options: Any,
) -> FastAPI:
    """The service; ``manager_options`` (``validate``, ``command``) replace JobManager parts in tests."""
    from services.store.db import (
        UNAVAILABLE_ERRORS,
        check_database,
        make_engine,
        session_factory,
        upgrade,
    )

    settings = settings or TrainerServiceSettings()
    engine = make_engine(database_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade, engine.url.render_as_string(hide_password=False))
        mgr = JobManager(
            settings.runs_dir.resolve(),
            session_factory(engine),
            settings.max_running,
            **manager_options,
        )
        app.state.jobs = mgr
        await asyncio.to_thread(mgr.recover)
        task = asyncio.create_task(_supervise(mgr, settings.poll_interval_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            engine.dispose()

    async def db_ready(app: FastAPI) -> str | None:
        return await asyncio.to_thread(check_database, engine)

    return create_service_app(
        name="trainer",
        settings=settings,
        routers=[router],
        lifespan=lifespan,
        ready_checks={"database": db_ready},
        unavailable_errors=UNAVAILABLE_ERRORS,
    )


async def _supervise(mgr: JobManager, interval: float) -> None:
    while True:
        try:
            await asyncio.to_thread(mgr.tick)
        except Exception:  # keep supervising; the next pass retries
            log.exception("job supervision pass failed")
        await asyncio.sleep(interval)
