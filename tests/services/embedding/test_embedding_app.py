"""The embedding service over HTTP (in-process ASGI): readiness, routes, limits, batching."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from services.embedding import app as app_module
from services.embedding import hypervolume as hv
from services.embedding.app import create_app
from services.embedding.images import encode_png
from services.embedding.settings import EmbeddingSettings


def _img(seed: int, w: int = 40, h: int = 30) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def _wait_ready(client: TestClient, timeout: float = 60) -> None:
    t0 = time.time()
    while client.get("/readyz").status_code != 200:
        assert time.time() - t0 < timeout, client.get("/readyz").json()
        time.sleep(0.01)


@pytest.fixture
def client(clip_encoder, tmp_path: Path):
    _img(0).save(tmp_path / "a.png")
    s = EmbeddingSettings(data_root=tmp_path, max_images_per_request=8, max_image_pixels=100_000)
    with TestClient(create_app(s, encoder=clip_encoder)) as c:
        _wait_ready(c)
        yield c


def test_not_ready_until_model_loaded(
    monkeypatch: pytest.MonkeyPatch, clip_encoder, tiny_clip_dir: Path
) -> None:
    gate = threading.Event()

    def slow_load(settings: EmbeddingSettings):
        gate.wait(10)
        return clip_encoder

    monkeypatch.setattr(app_module, "_load_encoder", slow_load)
    with TestClient(create_app(EmbeddingSettings(model_dir=tiny_clip_dir))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "loading" in r.json()["failing"]["model"]
        assert c.get("/healthz").status_code == 200
        r = c.post("/v1/embed", json={"texts": ["x"]})
        assert r.status_code == 503 and r.headers["retry-after"]
        gate.set()
        _wait_ready(c)
        assert c.post("/v1/embed", json={"texts": ["x"]}).status_code == 200


def test_unconfigured_and_failed_loads_stay_unready(tmp_path: Path) -> None:
    with TestClient(create_app(EmbeddingSettings())) as c:
        assert "PRL_EMBEDDING_MODEL_DIR" in c.get("/readyz").json()["failing"]["model"]
    with TestClient(create_app(EmbeddingSettings(model_dir=tmp_path / "missing"))) as c:
        t0 = time.time()
        while "failed" not in c.get("/readyz").json()["failing"]["model"]:
            assert time.time() - t0 < 60
            time.sleep(0.02)
        assert c.get("/readyz").status_code == 503


def test_embed_matches_encoder_and_reuses_duplicates(client: TestClient, clip_encoder) -> None:
    imgs = [_img(1), _img(2)]
    refs = [encode_png(imgs[0]), encode_png(imgs[1]), encode_png(imgs[0]), "a.png"]
    r = client.post("/v1/embed", json={"images": refs, "texts": ["a cat", "a dog", "a cat"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == clip_encoder.model_id and body["dim"] == clip_encoder.dim
    got = np.array(body["image_embeddings"])
    want = clip_encoder.encode_images([imgs[0], imgs[1], imgs[0], _img(0)])
    assert np.allclose(got, want, atol=1e-5)
    assert np.allclose(
        np.array(body["text_embeddings"]),
        clip_encoder.encode_texts(["a cat", "a dog", "a cat"]),
        atol=1e-5,
    )


def test_alignment_matches_hypervolume_of_embeddings(client: TestClient, clip_encoder) -> None:
    img = _img(5)
    items = [
        {"id": "s0", "image": encode_png(img), "query": "find the dog", "output": "the dog is left"},
        {"id": "s1", "image": encode_png(img), "query": "find the dog", "output": "nothing",
         "mask_boxes": [[0, 0, 20, 15]]},
    ]  # fmt: skip
    r = client.post("/v1/alignment", json={"items": items, "params": {"v_min": 0.2}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reward_range"] == pytest.approx([2.0, 25.0])
    canvas = Image.new("RGB", img.size)
    canvas.paste(img.crop((0, 0, 20, 15)), (0, 0))
    f_i = clip_encoder.encode_images([img, canvas])
    f_q = clip_encoder.encode_texts(["find the dog"] * 2)
    f_o = clip_encoder.encode_texts(["the dog is left", "nothing"])
    v = hv.volume(f_i, f_q, f_o)
    for k, res in enumerate(body["results"]):
        assert res["id"] == f"s{k}"
        assert res["volume"] == pytest.approx(v[k], abs=1e-4)
        assert res["reward"] == pytest.approx(max((1 / max(v[k], 0.2)) ** 2, 2.0), rel=1e-3)
        assert res["cos_image_query"] == pytest.approx(float(f_i[k] @ f_q[k]), abs=1e-4)


def test_patch_mask_over_http_equals_black_canvas(client: TestClient) -> None:
    img = _img(7, 40, 30)
    canvas = Image.new("RGB", img.size)
    canvas.paste(img.crop((20, 0, 40, 15)), (20, 0))
    mask = {"grid": [[0.1, 0.9], [0.2, 0.3]], "threshold": 0.5}
    r = client.post("/v1/embed", json={"images": [encode_png(img), encode_png(canvas)],
                                       "image_masks": [{"mask": mask}, None]})  # fmt: skip
    a, b = np.array(r.json()["image_embeddings"])
    assert np.allclose(a, b, atol=1e-5)


def test_errors_name_their_cause(client: TestClient) -> None:
    r = client.post("/v1/embed", json={"images": ["../a.png"]})
    assert r.status_code == 403 and "outside the data root" in r.json()["error"]["message"]
    r = client.post("/v1/embed", json={"images": ["a.png"] * 9})
    assert (
        r.status_code == 413
        and "PRL_EMBEDDING_MAX_IMAGES_PER_REQUEST" in r.json()["error"]["message"]
    )
    r = client.post("/v1/embed", json={"images": [encode_png(_img(0, 400, 300))]})
    assert r.status_code == 413 and "MAX_IMAGE_PIXELS" in r.json()["error"]["message"]
    r = client.post("/v1/embed", json={"images": []})
    assert r.status_code == 422 and "at least one image or one text" in r.json()["error"]["message"]
    r = client.post("/v1/embed", json={"images": ["a.png"], "image_masks": []})
    assert (
        r.status_code == 422 and "image_masks: 0 masks for 1 images" in r.json()["error"]["message"]
    )


def test_full_queue_is_503_with_retry_after(clip_encoder) -> None:
    with TestClient(
        create_app(EmbeddingSettings(max_queue=2, retry_after_s=3), encoder=clip_encoder)
    ) as c:
        _wait_ready(c)
        r = c.post("/v1/embed", json={"texts": ["a", "b", "c"]})
        assert r.status_code == 503 and r.headers["retry-after"] == "3"
        assert "queue is full" in r.json()["error"]["message"]
        assert c.post("/v1/embed", json={"texts": ["a", "b"]}).status_code == 200


class SlowEncoder:
    model_id, dim = "slow", 2

    def encode_texts(self, texts):
        time.sleep(0.3)
        return np.ones((len(texts), 2), dtype=np.float32) / np.sqrt(2)


def test_timeout_is_504() -> None:
    with TestClient(
        create_app(EmbeddingSettings(embed_timeout_s=0.05), encoder=SlowEncoder())
    ) as c:
        _wait_ready(c)
        r = c.post("/v1/embed", json={"texts": ["a"]})
        assert r.status_code == 504 and "EMBED_TIMEOUT_S" in r.json()["error"]["message"]


async def _concurrent(app: FastAPI, payloads: list[dict]) -> list[httpx.Response]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            while (await c.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.01)
            return list(await asyncio.gather(*(c.post("/v1/embed", json=p) for p in payloads)))


def test_concurrent_requests_batched_equal_one_by_one_in_order(clip_encoder) -> None:
    imgs = [_img(100 + k, 24 + k, 20 + 2 * k) for k in range(12)]
    payloads = [
        {"images": [encode_png(im)], "texts": [f"text number {k}"]} for k, im in enumerate(imgs)
    ]
    app = create_app(EmbeddingSettings(max_batch_size=64, max_delay_ms=100), encoder=clip_encoder)
    responses = asyncio.run(_concurrent(app, payloads))
    for k, r in enumerate(responses):
        assert r.status_code == 200
        assert np.allclose(
            r.json()["image_embeddings"][0], clip_encoder.encode_images([imgs[k]])[0], atol=1e-5
        )
        assert np.allclose(
            r.json()["text_embeddings"][0],
            clip_encoder.encode_texts([f"text number {k}"])[0],
            atol=1e-5,
        )
    metrics = TestClient(app).get("/metrics").text
    count = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("prl_embed_batch_size_count")
    )
    assert count < len(payloads)  # requests were coalesced into fewer forwards


def test_read_scope_enforced_when_configured(clip_encoder) -> None:
    s = EmbeddingSettings(auth_read=True, api_keys={"k-read": ["read"], "k-w": ["write"]})
    with TestClient(create_app(s, encoder=clip_encoder)) as c:
        _wait_ready(c)
        assert c.post("/v1/embed", json={"texts": ["a"]}).status_code == 401
        bad = c.post("/v1/embed", json={"texts": ["a"]}, headers={"Authorization": "Bearer k-w"})
        assert bad.status_code == 403
        ok = c.post("/v1/embed", json={"texts": ["a"]}, headers={"Authorization": "Bearer k-read"})
        assert ok.status_code == 200
