"""``create_app``: the leaderboard service (REST over the store + the web page at ``/``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from services.common.app import create_service_app
from services.leaderboard import drilldown_api, uploads
from services.leaderboard.api import STATIC_DIR, page_router, router
from services.leaderboard.settings import LeaderboardSettings
from services.store import db

log = logging.getLogger(__name__)


async def database_ready(app: FastAPI) -> str | None:
    return await run_in_threadpool(db.check_database, app.state.engine)


def _prune(app: FastAPI, settings: LeaderboardSettings) -> None:
    """Drop expired idempotency records at startup (skipped while the schema is missing)."""
    if db.check_database(app.state.engine) is not None:
        return
    with db.transaction(app.state.session_factory) as s:
        removed = uploads.prune_idempotency_records(
            s, timedelta(seconds=settings.idempotency_ttl_s)
        )
    if removed:
        log.info("removed %d expired idempotency records", removed)


def create_app(settings: LeaderboardSettings | None = None) -> FastAPI:
    """The leaderboard app; with ``auto_migrate`` the store is upgraded at startup."""
    settings = settings or LeaderboardSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await run_in_threadpool(db.upgrade, settings.database_url)
        await run_in_threadpool(_prune, app, settings)
        try:
            yield
        finally:
            app.state.engine.dispose()

    app = create_service_app(
        name="leaderboard",
        settings=settings,
        routers=[router, drilldown_api.router, page_router],
        lifespan=lifespan,
        ready_checks={"database": database_ready},
        unavailable_errors=db.UNAVAILABLE_ERRORS,
        description="Benchmark runs, metrics, leaderboards and training curves.",
    )
    app.state.engine = db.make_engine(settings.database_url)
    app.state.session_factory = db.session_factory(app.state.engine)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
