"""Embedding service app: ``uvicorn --factory services.embedding.app:create_app``.

Lifespan: the model loads in a background thread, so ``/healthz`` answers at once while
``/readyz`` stays 503 (``model: loading …``) until the encoder is in memory and the batcher
runs; embed calls meanwhile get 503 + Retry-After. A failed load keeps readiness false with
the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge, Histogram

from services.common.app import create_service_app
from services.common.openapi import declare_response
from services.embedding.api import router
from services.embedding.batcher import DynamicBatcher
from services.embedding.engine import Engine, Item, run_items
from services.embedding.settings import EmbeddingSettings

log = logging.getLogger(__name__)


@dataclass
class LoadState:
    status: str = "not started"
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class BatchMetrics:
    """``prl_embed_batch_size``, ``prl_embed_queue_wait_seconds``, ``prl_embed_queue_depth``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_size = Histogram(
            "prl_embed_batch_size",
            "items per model forward",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=registry,
        )
        self.wait = Histogram(
            "prl_embed_queue_wait_seconds",
            "time an item waited in the batching queue",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.depth = Gauge(
            "prl_embed_queue_depth", "items waiting to be batched", registry=registry
        )

    def observe(self, size: int, waits: list[float]) -> None:
        self.batch_size.observe(size)
        for w in waits:
            self.wait.observe(w)


def _load_encoder(settings: EmbeddingSettings) -> object:
    from services.embedding.encoders import Encoder

    assert settings.model_dir is not None
    return Encoder.load(
        settings.model_dir,
        device=settings.device,
        dtype=settings.dtype,
        model_id=settings.model_id,
        attn_implementation=settings.attn_implementation,
    )


def create_app(
    settings: EmbeddingSettings | None = None, *, encoder: object | None = None
) -> FastAPI:
    """The embedding service. ``encoder`` (tests) skips loading from ``settings.model_dir``."""
    settings = settings or EmbeddingSettings()
    load = LoadState()

    async def model_ready(app: FastAPI) -> str | None:
        return None if getattr(app.state, "engine", None) is not None else f"model {load.status}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not hasattr(app.state, "batch_metrics"):  # once per app, even if restarted
            app.state.batch_metrics = BatchMetrics(app.state.metrics.registry)
            app.state.batch_metrics.depth.set_function(lambda: _depth(app))
        metrics: BatchMetrics = app.state.batch_metrics
        app.state.engine = None

        async def start() -> None:
            load.status = f"loading from {settings.model_dir}"
            try:
                enc = (
                    encoder
                    if encoder is not None
                    else await asyncio.to_thread(_load_encoder, settings)
                )
            except Exception as exc:
                log.exception("embedding model failed to load")
                load.status = f"failed to load: {type(exc).__name__}: {exc}"
                return
            batcher: DynamicBatcher[Item, object] = DynamicBatcher(
                lambda items: run_items(enc, items),
                max_batch_size=settings.max_batch_size,
                max_delay_ms=settings.max_delay_ms,
                max_queue=settings.max_queue,
                observer=metrics.observe,
            )
            batcher.start()
            app.state.engine = Engine(enc, batcher, settings)  # type: ignore[arg-type]
            load.status = "loaded"

        if encoder is None and settings.model_dir is None:
            load.status = (
                "not configured: set PRL_EMBEDDING_MODEL_DIR to a local CLIP/SigLIP directory"
            )
        else:
            load.task = asyncio.get_running_loop().create_task(start())
        try:
            yield
        finally:
            if load.task is not None and not load.task.done():
                load.task.cancel()
                await asyncio.gather(load.task, return_exceptions=True)
            engine: Engine | None = app.state.engine
            if engine is not None:
                await engine.batcher.stop()
            app.state.engine = None

    return create_service_app(
        name="embedding",
        settings=settings,
        routers=[router],
        lifespan=lifespan,
        ready_checks={"model": model_ready},
        description="CLIP/SigLIP embeddings with dynamic batching, and DEVA's alignment hypervolume.",
        openapi_patch=lambda schema: declare_response(
            schema,
            ["POST /v1/embed", "POST /v1/alignment"],
            404,
            "an image path does not exist under the data root",
        ),
    )


def _depth(app: FastAPI) -> float:
    engine = getattr(app.state, "engine", None)
    return float(engine.batcher.depth) if engine is not None else 0.0
