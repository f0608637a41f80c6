"""DEVA ``alignment`` component wired to an in-process embedding service (tiny CLIP)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

from schemas.reward import RewardSpec, Sample
from services.embedding import hypervolume as hv
from services.embedding.images import encode_png
from services.reward.scoring import ScoringContext, ascore_samples, components, presets
from services.reward.scoring.alignment import AlignmentParams, alignment_bounds, alignment_ready

URL = "http://embedding.test"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory):
    from services.embedding.encoders import Encoder
    from services.embedding.tiny import build_tiny_encoder

    return Encoder.load(build_tiny_encoder("clip", tmp_path_factory.mktemp("align") / "clip"))


def _img(seed: int) -> Image.Image:
    return Image.fromarray(
        np.random.default_rng(seed).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    )


def _sample(k: int, completion: str, **extra) -> Sample:
    base = {"id": f"s{k}", "completion": completion, "solution": {"boxes": [[0, 0, 20, 15]]}}
    return Sample.model_validate(base | extra)


class Counting(httpx.AsyncBaseTransport):
    """ASGI transport that counts the requests per path."""

    def __init__(self, app) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)


async def _with_service(encoder, fn):
    from services.embedding.app import create_app
    from services.embedding.settings import EmbeddingSettings

    app = create_app(EmbeddingSettings(), encoder=encoder)
    async with app.router.lifespan_context(app):
        transport = Counting(app)
        async with httpx.AsyncClient(transport=transport) as http:
            ctx = ScoringContext(settings=SimpleNamespace(embedding_url=URL), http=http)
            while (await http.get(URL + "/readyz")).status_code != 200:
                await asyncio.sleep(0.01)
            transport.paths.clear()
            return await fn(ctx), transport.paths


def test_deva_presets_include_alignment_harmonically() -> None:
    for name in ("deva_detection", "deva_grounding", "deva_classification"):
        spec = presets.get(name).spec
        assert "alignment" in [c.name for c in spec.components]
        assert spec.aggregate.method == "harmonic"
    assert components.get("alignment").kind == "batch"


def test_bounds_follow_from_v_min() -> None:
    # credit (default): lo' = (2 − 0.5·25) / 0.5 = −21, so r̂(2) = 23/46 = 0.5 and r̂(25) = 1
    assert alignment_bounds(AlignmentParams()) == (-21.0, 25.0)
    assert alignment_bounds(AlignmentParams(floor_credit=0.2)) == pytest.approx((-3.75, 25.0))
    assert alignment_bounds(AlignmentParams(c=500.0)) == (499.0, 500.0)  # constant r_v → r̂ = 1
    assert alignment_bounds(AlignmentParams(floor="zero")) == (0.0, 25.0)
    assert alignment_bounds(AlignmentParams(v_min=0.1, floor="zero")) == pytest.approx((0.0, 100.0))
    assert alignment_bounds(AlignmentParams(floor="attainable")) == (2.0, 25.0)
    assert alignment_bounds(AlignmentParams(a=2.0, c=0.0, v_min=0.5, floor="attainable")) == (
        4.0,
        16.0,
    )


def test_values_match_hypervolume_in_one_call(encoder) -> None:
    img = _img(0)
    query = "find the red box"
    answers = ["[1, 2, 20, 15]", "[0, 0, 10, 10]", "[5, 5, 30, 25]"]
    samples = [
        _sample(k, f"<think>look</think><answer>{a}</answer>", image=encode_png(img), query=query)
        for k, a in enumerate(answers)
    ]
    samples[2] = _sample(2, samples[2].completion, image=encode_png(img), query=query,
                         mask_boxes=[[0, 0, 20, 15]])  # fmt: skip
    results, paths = asyncio.run(
        _with_service(encoder, lambda ctx: ascore_samples(samples, "deva_grounding", ctx))
    )
    assert paths == ["/v1/alignment"]  # one HTTP call for every sample
    canvas = Image.new("RGB", img.size)
    canvas.paste(img.crop((0, 0, 20, 15)), (0, 0))
    f_i = encoder.encode_images([img, img, canvas])
    f_q = encoder.encode_texts([query] * 3)
    f_o = encoder.encode_texts(answers)  # output = the <answer> block's contents
    want = hv.reward(hv.volume(f_i, f_q, f_o))
    for k, res in enumerate(results):
        assert not res.component_errors, res.component_errors
        assert res.components["alignment"] == pytest.approx(float(want[k]), rel=1e-4)
        # harmonic over giou, format (weight 1) and alignment (weight ¼, floor credit ½:
        # scaled by (−21, 25), so r̂ = (r + 21) / 46)
        g = (res.components["giou"] + 1) / 2
        a = (want[k] + 21) / 46
        expected = 2.25 / (1 / max(g, 1e-6) + 1 / 1.0 + 0.25 / a)
        assert res.reward == pytest.approx(expected, rel=1e-4)


def test_unreachable_service_is_an_explicit_component_error() -> None:
    s = _sample(
        0, "<think>t</think><answer>[0, 0, 20, 15]</answer>", image=encode_png(_img(1)), query="q"
    )
    ctx = ScoringContext(
        settings=SimpleNamespace(embedding_url="http://127.0.0.1:9", embedding_timeout_s=2.0)
    )
    (res,) = asyncio.run(ascore_samples([s], "deva_grounding", ctx))
    assert res.component_errors["alignment"].code == "embedding_unavailable"
    assert "alignment" not in res.components  # no silent 0
    assert res.error is None
    assert res.reward == pytest.approx(1.0)  # harmonic over the computed giou (=1) and format (=1)
    assert asyncio.run(alignment_ready(ctx)).startswith(
        "embedding service at http://127.0.0.1:9 unreachable"
    )


def test_missing_inputs_and_service_errors_are_per_sample(encoder) -> None:
    good = _sample(
        0, "<think>t</think><answer>[0, 0, 20, 15]</answer>", image=encode_png(_img(2)), query="q"
    )
    no_image = _sample(1, good.completion, query="q")
    results, _ = asyncio.run(
        _with_service(encoder, lambda ctx: ascore_samples([good, no_image], "deva_grounding", ctx))
    )
    assert "alignment" in results[0].components
    assert results[1].component_errors["alignment"].code == "missing_input"
    assert "image" in results[1].component_errors["alignment"].message
    forbidden = _sample(2, good.completion, image="../../etc/passwd", query="q")
    (res,), _ = asyncio.run(
        _with_service(encoder, lambda ctx: ascore_samples([forbidden], "deva_grounding", ctx))
    )
    err = res.component_errors["alignment"]
    assert err.code == "embedding_error" and "403" in err.message


def test_ready_check_reports_the_dependency(encoder) -> None:
    got, paths = asyncio.run(_with_service(encoder, alignment_ready))
    assert got is None and paths == ["/readyz"]


def test_output_mode_completion(encoder) -> None:
    text = "<think>long reasoning</think><answer>[0, 0, 20, 15]</answer>"
    s = _sample(0, text, image=encode_png(_img(3)), query="q")
    spec = RewardSpec.model_validate(
        {
            "components": [{"name": "alignment", "params": {"output": "completion"}}],
            "aggregate": {"method": "weighted"},
        }
    )
    (res,), _ = asyncio.run(_with_service(encoder, lambda ctx: ascore_samples([s], spec, ctx)))
    f = (
        encoder.encode_images([_img(3)]),
        encoder.encode_texts(["q"]),
        encoder.encode_texts([text]),
    )
    assert res.components["alignment"] == pytest.approx(
        float(hv.reward(hv.volume(*f))[0]), rel=1e-4
    )


def test_reward_service_groups_end_to_end(encoder) -> None:
    """POST /v1/score/groups with deva_grounding: alignment per completion, one embedding call."""
    from services.reward.app import create_app as reward_app
    from services.reward.settings import RewardSettings

    img = encode_png(_img(4))
    group = {
        "id": "g0",
        "solution": {"boxes": [[0, 0, 20, 15]]},
        "image": img,
        "query": "the box",
        "completions": [f"<think>t</think><answer>[0, 0, {20 - k}, 15]</answer>" for k in range(4)],
    }

    async def run(ctx: ScoringContext):
        app = reward_app(RewardSettings())
        async with app.router.lifespan_context(app):
            app.state.context = ctx  # route the embedding calls to the in-process service
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://reward") as c:
                r = await c.post(
                    "/v1/score/groups", json={"reward": "deva_grounding", "groups": [group]}
                )
                return r.status_code, r.json()

    (status, body), paths = asyncio.run(_with_service(encoder, run))
    assert status == 200, body
    assert paths == ["/v1/alignment"]
    g = body["groups"][0]
    assert len(g["components"]["alignment"]) == 4
    assert all(v >= 2.0 for v in g["components"]["alignment"])  # r_v >= c
    assert not any(g["errors"])


def test_reward_readyz_reports_embedding_dependency_when_opted_in() -> None:
    from fastapi.testclient import TestClient

    from services.reward.app import create_app as reward_app
    from services.reward.settings import RewardSettings

    down = RewardSettings(embedding_url="http://127.0.0.1:9", ready_components=["alignment"])
    with TestClient(reward_app(down)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "unreachable" in r.json()["failing"]["component:alignment"]
    with TestClient(reward_app(RewardSettings(embedding_url="http://127.0.0.1:9"))) as c:
        assert c.get("/readyz").status_code == 200  # not opted in: other rewards still served
