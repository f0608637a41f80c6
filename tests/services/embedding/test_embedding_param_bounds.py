"""Parameter bounds on the embedding service: hypervolume parameters that would overflow are
a 422 naming the field and its allowed range, never a 500."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from services.embedding.app import create_app
from services.embedding.images import encode_png
from services.embedding.settings import EmbeddingSettings


@pytest.fixture
def client(clip_encoder):
    with TestClient(create_app(EmbeddingSettings(), encoder=clip_encoder)) as c:
        t0 = time.time()
        while c.get("/readyz").status_code != 200:
            assert time.time() - t0 < 60
            time.sleep(0.01)
        yield c


def _item() -> dict:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8))
    return {"image": encode_png(img), "query": "find the dog", "output": "the dog"}


@pytest.mark.parametrize(
    ("params", "field", "allowed"),
    [
        ({"a": 1e200}, "params.a", "(0, 1e+06]"),
        ({"b": -1e200}, "params.b", "[-1e+06, 1e+06]"),
        ({"v_min": 1e-300}, "params.v_min", "[1e-06, 1]"),
        ({"c": 1e300}, "params.c", "[-1e+12, 1e+12]"),
    ],
)
def test_overflowing_params_are_422(client: TestClient, params, field, allowed) -> None:
    r = client.post("/v1/alignment", json={"items": [_item()], "params": params})
    assert r.status_code == 422, r.text
    msg = r.json()["error"]["message"]
    assert field in msg and f"must be in {allowed}" in msg, msg


def test_the_extreme_allowed_params_stay_finite(client: TestClient) -> None:
    params = {"a": 1e6, "b": -1e6, "c": -1e12, "v_min": 1e-6}
    r = client.post("/v1/alignment", json={"items": [_item()], "params": params})
    assert r.status_code == 200, r.text
    body = r.json()
    lo, hi = body["reward_range"]
    assert np.isfinite([lo, hi]).all() and hi == pytest.approx((1e6 / 1e-6 + 1e6) ** 2)
    assert lo <= body["results"][0]["reward"] <= hi
