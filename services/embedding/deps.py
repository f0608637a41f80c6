"""Typed FastAPI dependencies of the embedding service (what routes take from the app)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from services.embedding import engine as eng
from services.embedding.settings import EmbeddingSettings


async def get_settings(request: Request) -> EmbeddingSettings:
    return request.app.state.settings


async def get_engine(request: Request) -> eng.Engine:
    """The loaded engine; 503 + Retry-After while the model is still loading."""
    engine: eng.Engine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        retry = str(request.app.state.settings.retry_after_s)
        raise HTTPException(
            503, "the embedding model is still loading; retry later", headers={"Retry-After": retry}
        )
    return engine


Settings = Annotated[EmbeddingSettings, Depends(get_settings)]
EngineDep = Annotated[eng.Engine, Depends(get_engine)]
