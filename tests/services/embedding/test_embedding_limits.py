"""``GET /v1/limits`` of the embedding service, read by the real SDK against the real app
(answered while no model is loaded: the limits do not depend on it)."""

from __future__ import annotations

import asyncio

import httpx

from clients.chunking import ServerLimits
from clients.embedding import AsyncEmbeddingClient
from services.embedding.app import create_app
from services.embedding.settings import EmbeddingSettings


def test_sdk_reads_the_embedding_limits():
    settings = EmbeddingSettings(max_items_per_request=7, max_body_bytes=123_456)
    app = create_app(settings)

    async def go():
        async with app.router.lifespan_context(app):
            t = httpx.ASGITransport(app=app)
            async with AsyncEmbeddingClient("http://embed", transport=t) as ec:
                limits = await ec.server_limits("max_items")
            async with httpx.AsyncClient(transport=t, base_url="http://embed") as raw:
                payload = (await raw.get("/v1/limits")).json()
        return limits, payload

    limits, payload = asyncio.run(go())
    assert limits == ServerLimits(max_items=7, max_body_bytes=123_456)
    assert payload["max_items"] == 7 and payload["max_body_bytes"] == 123_456
    assert payload["max_images"] == settings.max_images_per_request
    assert payload["max_texts"] == settings.max_texts_per_request
