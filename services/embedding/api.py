"""Embedding routes (thin: the work is in :mod:`services.embedding.engine`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from schemas.embedding import AlignmentRequest, AlignmentResponse, EmbedRequest, EmbedResponse
from services.common.auth import require_scope
from services.embedding import engine as eng
from services.embedding.batcher import QueueFull
from services.embedding.deps import EngineDep, Settings
from services.embedding.images import ImageInputError

router = APIRouter(prefix="/v1", tags=["embedding"], dependencies=[Depends(require_scope("read"))])

_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "image path outside the data root"},
    413: {
        "description": "a limit (images, texts, bytes, pixels) is exceeded; the message names it"
    },
    503: {"description": "model still loading, or queue full (Retry-After)"},
    504: {"description": "embeddings not ready within PRL_EMBEDDING_EMBED_TIMEOUT_S"},
}


@contextmanager
def as_http(engine: eng.Engine) -> Iterator[None]:
    """Map engine failures to HTTP errors (403/404/413/422 images, 413 limits, 503 queue, 504)."""
    try:
        yield
    except ImageInputError as exc:
        raise HTTPException(exc.status, exc.message) from None
    except eng.LimitError as exc:
        raise HTTPException(413, str(exc)) from None
    except QueueFull as exc:
        retry = str(engine.settings.retry_after_s)
        raise HTTPException(503, str(exc), headers={"Retry-After": retry}) from None
    except TimeoutError:
        raise HTTPException(
            504,
            f"embeddings not ready within {engine.settings.embed_timeout_s} s (PRL_EMBEDDING_EMBED_TIMEOUT_S)",
        ) from None


@router.post("/embed", response_model=EmbedResponse, operation_id="embed", responses=_ERRORS)
async def embed(req: EmbedRequest, engine: EngineDep) -> EmbedResponse:
    """L2-normalised embeddings of images (optionally masked) and texts."""
    with as_http(engine):
        return await eng.embed(req, engine)


@router.post(
    "/alignment", response_model=AlignmentResponse, operation_id="alignment", responses=_ERRORS
)
async def alignment(req: AlignmentRequest, engine: EngineDep) -> AlignmentResponse:
    """DEVA hypervolume V, reward r_v and pairwise cosines per (image, query, output) item."""
    with as_http(engine):
        return await eng.align(req, engine)


@router.get("/limits", operation_id="limits")
async def limits(s: Settings) -> dict[str, int]:
    """Request-size limits (413 above them); the SDK splits ``/v1/alignment`` batches to fit
    ``max_items`` items and ``max_body_bytes`` per request. Answered while the model loads."""
    return {
        "max_items": s.max_items_per_request,
        "max_images": s.max_images_per_request,
        "max_texts": s.max_texts_per_request,
        "max_image_bytes": s.max_image_bytes,
        "max_image_pixels": s.max_image_pixels,
        "max_text_chars": s.max_text_chars,
        "max_body_bytes": s.max_body_bytes,
    }


@router.get("/model", operation_id="model_info")
async def model_info(engine: EngineDep) -> dict[str, Any]:
    """The loaded model, its device/dtype and the batching configuration."""
    s = engine.settings
    enc = engine.encoder
    return {
        "model": engine.model_id,
        "dim": engine.dim,
        "family": getattr(enc, "family", None),
        "device": getattr(getattr(enc, "plan", None), "device", None),
        "dtype": getattr(getattr(enc, "plan", None), "dtype", None),
        "max_batch_size": s.max_batch_size,
        "max_delay_ms": s.max_delay_ms,
        "max_queue": s.max_queue,
        "queue_depth": engine.batcher.depth,
    }
