"""A minimal service for the graceful-shutdown test, run under a real uvicorn process."""

import asyncio

from fastapi import APIRouter

from services.common.app import create_service_app
from services.common.settings import ServiceSettings

router = APIRouter()


@router.get("/slow")
async def slow(seconds: float = 1.0) -> dict:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


def create_app():
    return create_service_app(name="drain-test", settings=ServiceSettings(), routers=[router])
