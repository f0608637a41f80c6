"""AsyncEmbeddingClient in-process against the real embedding app (httpx ASGI transport)."""

from __future__ import annotations

import asyncio
import base64
import io
import math

import httpx
import pytest

from clients.embedding import AsyncEmbeddingClient
from clients.errors import PermissionDeniedError

pytestmark = pytest.mark.torch


def png_b64(color: tuple[int, int, int]) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_embed_and_chunked_alignment_in_process(tmp_path):
    from services.embedding.app import create_app
    from services.embedding.settings import EmbeddingSettings
    from services.embedding.tiny import build_tiny_encoder

    model_dir = build_tiny_encoder("clip", tmp_path / "clip", seed=0)
    app = create_app(EmbeddingSettings(model_dir=model_dir, device="cpu"))
    items = [
        {
            "id": f"i{k}",
            "image": png_b64((40 * k, 10, 200)),
            "query": "red box",
            "output": f"box {k}",
        }
        for k in range(5)
    ]

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with AsyncEmbeddingClient(
                "http://embed", transport=transport, chunk_size=2
            ) as ec:
                emb = await ec.embed(texts=["a cat", "a dog"], images=[items[0]["image"]])
                whole = await ec.alignment(items)
            async with AsyncEmbeddingClient("http://embed", transport=transport) as ec:
                single = await ec.alignment(items)
                with pytest.raises(PermissionDeniedError) as info:  # a path, and no data root
                    await ec.embed(texts=["x"], images=["some/file.png"])
                assert info.value.attempts == 1 and info.value.request_id
        return emb, whole, single

    emb, whole, single = asyncio.run(go())
    assert len(emb.text_embeddings) == 2 and len(emb.image_embeddings) == 1
    for vec in emb.text_embeddings + emb.image_embeddings:
        assert len(vec) == emb.dim and math.isclose(sum(v * v for v in vec), 1.0, rel_tol=1e-4)
    # three requests of ≤ 2 items give the same answers as one request of 5
    assert [r.id for r in whole.results] == [f"i{k}" for k in range(5)]
    for a, b in zip(whole.results, single.results, strict=True):
        assert a.volume == pytest.approx(b.volume, abs=1e-5)
        assert a.reward == pytest.approx(b.reward, rel=1e-5)
