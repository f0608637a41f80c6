from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from trainer.rewards import (
    RewardClientConfig,
    completion_text,
    group_statistics,
    image_refs,
    make_reward_func,
    summarise,
)


def test_completion_text_handles_both_formats() -> None:
    assert completion_text("abc") == "abc"
    assert (
        completion_text([{"role": "assistant", "content": "x<answer>1</answer>"}])
        == "x<answer>1</answer>"
    )
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "image"}]}]
    assert completion_text(parts) == "a"


def test_group_statistics_by_hand() -> None:
    stats = group_statistics([1.0, 3.0, 2.0, 2.0, 5.0], ["a", "a", "b", "b", "c"])
    # group a: sample std of (1, 3) = sqrt(2); group b: 0; c has one member and is skipped
    assert stats["group_std"] == pytest.approx(2**0.5 / 2)
    assert stats["zero_variance_frac"] == pytest.approx(0.5)
    assert group_statistics([1.0], ["a"]) == {}


def test_summarise_component_means_and_errors() -> None:
    results = [
        {"reward": 1.0, "components": {"f1": 1.0, "format": 1.0}, "error": None},
        {"reward": 0.0, "components": {"f1": 0.0, "format": 0.0}, "error": {"code": "parse"}},
    ]
    m = summarise(results, ["g", "g"])
    assert m["component/f1"] == 0.5 and m["error_frac"] == 0.5 and m["mean"] == 0.5


def _fake_service(calls: list[dict[str, Any]], fail_first: int = 0) -> httpx.MockTransport:
    state = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # catalog and limits: this fake has neither
            return httpx.Response(404, json={"error": {"message": "not here"}})
        state["n"] += 1
        if state["n"] <= fail_first:
            return httpx.Response(503, json={"error": {"code": "busy"}})
        body = json.loads(request.content)
        calls.append({"body": body, "auth": request.headers.get("authorization")})
        results = [
            {
                "id": s["id"],
                "reward": float(len(s["completion"])),
                "components": {"format": 1.0},
                "error": None,
            }
            for s in reversed(body["samples"])  # order must not matter
        ]
        return httpx.Response(
            200, json={"results": results, "reward": {"components": [{"name": "format"}]}}
        )

    return httpx.MockTransport(handler)


def test_reward_func_is_async_posts_once_and_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    transport = _fake_service(calls, fail_first=1)
    monkeypatch.setattr("trainer.rewards.make_transport", lambda url: (transport, "http://svc"))
    from trl.trainer.utils import get_callable_name, is_async_callable

    fn = make_reward_func(RewardClientConfig(url="http://svc", reward="dig", backoff_s=0.0))
    # the SDK's TRL reward function, as TRL sees it
    assert is_async_callable(fn) and get_callable_name(fn) == "reward_service"
    logged: dict[str, float] = {}
    sol = json.dumps({"boxes": []})
    rewards = asyncio.run(
        fn(
            prompts=["p"] * 4,
            completions=[[{"role": "assistant", "content": c}] for c in ["a", "bb", "ccc", "dddd"]],
            completion_ids=[[0]] * 4,
            solution=[sol] * 4,
            frame=[None] * 4,
            id=["x", "x", "y", "y"],
            images=[None] * 4,
            log_metric=lambda k, v: logged.__setitem__(k, v),
        )
    )
    assert rewards == [1.0, 2.0, 3.0, 4.0]
    assert len(calls) == 1 and calls[0]["body"]["reward"] == "dig"
    assert calls[0]["auth"] == "Bearer prl-dev-key"
    sample = calls[0]["body"]["samples"][0]
    # what a sample carries: the completion text, the decoded solution, no query/image/mask
    assert sample["completion"] == "a" and sample["solution"] == {"boxes": []}
    assert sample.get("query") is None and sample.get("image") is None
    assert sample.get("mask") is None
    assert logged["reward_service/component/format"] == 1.0
    assert logged["reward_service/group_std"] == pytest.approx(2**0.5 / 2)
    assert logged["reward_service/mean"] == 2.5 and logged["reward_service/error_frac"] == 0.0


def test_client_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    from clients.errors import UnprocessableEntityError

    hits = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # the SDK asks for /v1/limits once
            return httpx.Response(404, json={"error": {"message": "no limits"}})
        hits["n"] += 1
        return httpx.Response(422, json={"error": {"message": "samples[0].solution: bad"}})

    transport = httpx.MockTransport(handler)
    monkeypatch.setattr("trainer.rewards.make_transport", lambda url: (transport, "http://s"))
    fn = make_reward_func(RewardClientConfig(url="http://s", backoff_s=0.0, retries=3))
    with pytest.raises(UnprocessableEntityError, match=r"samples\[0\]\.solution"):
        asyncio.run(fn(completions=["a"], solution=[json.dumps({"boxes": []})]))
    assert hits["n"] == 1


def test_alignment_inputs_ride_in_each_sample(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    calls: list[dict[str, Any]] = []
    transport = _fake_service(calls)
    monkeypatch.setattr("trainer.rewards.make_transport", lambda url: (transport, "http://svc"))
    cfg = RewardClientConfig(url="http://svc", send_inputs=True, path_root=str(tmp_path))
    mask = {"grid": [[0.0, 1.0], [0.5, 0.2]], "threshold": 0.5}
    asyncio.run(
        make_reward_func(cfg)(
            prompts=["p", "p"],
            completions=["a", "b"],
            solution=['{"boxes": []}'] * 2,
            query=["q", "q"],
            image_path=[str(tmp_path / "i" / "b.png"), None],
            alignment_mask=[json.dumps(mask), None],
        )
    )
    s = calls[0]["body"]["samples"]
    assert s[0]["image"] == "i/b.png" and s[0]["mask"] == mask and s[0]["query"] == "q"
    assert s[1].get("image") is None and s[1].get("mask") is None


def test_image_refs_paths_under_root_or_base64(tmp_path: Any) -> None:
    import base64
    import io

    from PIL import Image

    a, b = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    paths = [str(tmp_path / "images" / "x_b.png")]
    assert image_refs(1, paths, None, None, mode="path", root=str(tmp_path)) == ["images/x_b.png"]
    with pytest.raises(ValueError, match=r"outside alignment\.path_root"):
        image_refs(1, ["/elsewhere/x.png"], None, None, mode="path", root=str(tmp_path))
    (ref,) = image_refs(1, None, [[a, b]], None, mode="base64", root=None)
    decoded = Image.open(io.BytesIO(base64.b64decode(ref)))
    assert decoded.getpixel((0, 0)) == (0, 0, 255)  # the last image of the row (DiG's B)


def test_summarise_counts_failed_components_separately() -> None:
    err = {"code": "embedding_unavailable", "message": "down"}
    results = [
        {"reward": 1.0, "components": {"f1": 1.0}, "error": None, "component_errors": {}},
        {
            "reward": 0.5,
            "components": {"f1": 0.5},
            "error": None,
            "component_errors": {"alignment": err},
        },
    ]
    m = summarise(results, ["g", "g"])
    assert m["component_error_frac/alignment"] == 0.5 and m["error_frac"] == 0.0
    assert "component/alignment" not in m  # a failed component is not averaged in as 0


def test_inprocess_mode_uses_the_reward_app() -> None:
    pytest.importorskip("services.reward.app")
    fn = make_reward_func(RewardClientConfig(url="inprocess", reward="dig"))
    sol = json.dumps({"boxes": [[10, 10, 20, 20]]})
    frame = json.dumps({"coords": "pixel", "image_size": [64, 64]})
    good = '<think>x</think> <answer>[{"bbox_2d": [10, 10, 20, 20]}]</answer>'
    rewards = asyncio.run(
        fn(completions=[good, "junk"], solution=[sol, sol], frame=[frame, frame], id=["a", "a"])
    )
    assert rewards[0] > rewards[1]
