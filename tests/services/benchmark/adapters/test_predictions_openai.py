"""Predictions-file and OpenAI-compatible adapters (the HTTP one against a mock transport)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from services.benchmark.adapters import GenerationRequest, adapter_names, get_adapter
from services.benchmark.adapters.base import fill_images
from services.benchmark.adapters.openai_chat import OpenAIChat, openai_messages
from services.benchmark.adapters.predictions import read_predictions
from tasks.prompts import chat_messages


def test_registry_lists_all_four_adapters():
    assert {"transformers", "vllm", "openai", "predictions"} <= set(adapter_names())


def test_predictions_file_first_line_wins_aliases_and_missing_ids(tmp_path: Path):
    p = tmp_path / "p.jsonl"
    p.write_text(
        '{"id": "a", "completion": "A1"}\n\n{"sample_id": "b", "response": "B"}\n{"id": "a", "completion": "A2"}\n'
    )
    assert read_predictions(p) == {"a": "A1", "b": "B"}
    ad = get_adapter("predictions", path=str(p))
    assert ad.generate([GenerationRequest("b", []), GenerationRequest("a", [])]) == ["B", "A1"]
    with pytest.raises(KeyError, match="no prediction for 1 sample"):
        ad.generate([GenerationRequest("zzz", [])])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        read_predictions(bad)


def test_fill_images_counts_placeholders():
    msgs = chat_messages(2, "hi")
    filled = fill_images(msgs, ["a.png", "b.png"])
    parts = filled[1]["content"]
    assert [p.get("image") for p in parts] == ["a.png", "b.png", None]
    assert "image" not in msgs[1]["content"][0]  # input untouched
    with pytest.raises(ValueError, match="more image placeholders than the 1 images"):
        fill_images(msgs, ["a.png"])
    with pytest.raises(ValueError, match="2 image placeholders for 3 images"):
        fill_images(msgs, ["a.png", "b.png", "c.png"])


def _png(tmp_path: Path) -> Path:
    from PIL import Image

    p = tmp_path / "x.png"
    Image.new("RGB", (4, 3), (255, 0, 0)).save(p)
    return p


def test_openai_messages_embed_images_as_data_urls(tmp_path: Path):
    img = _png(tmp_path)
    out = openai_messages(chat_messages(1, "find it"), [str(img)])
    part = out[1]["content"][0]
    assert part["type"] == "image_url"
    head, b64 = part["image_url"]["url"].split(",", 1)
    assert head == "data:image/png;base64"
    assert base64.b64decode(b64) == img.read_bytes()
    assert out[1]["content"][1] == {"type": "text", "text": "find it"}


def test_openai_adapter_sends_greedy_requests_and_retries_transient_errors(
    tmp_path: Path, monkeypatch
):
    import services.benchmark.adapters.openai_chat as mod

    monkeypatch.setattr(mod.time, "sleep", lambda s: None)
    img = _png(tmp_path)
    calls: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(body)
        if len(calls) == 1:
            return httpx.Response(503, text="busy")
        text = body["messages"][-1]["content"][-1]["text"]
        return httpx.Response(200, json={"choices": [{"message": {"content": f"echo {text}"}}]})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    ad = OpenAIChat("served", base_url="http://x/v1", client=client, concurrency=1, retries=2)
    reqs = [GenerationRequest(str(i), chat_messages(1, f"q{i}"), [str(img)]) for i in range(3)]
    assert ad.generate(reqs) == ["echo q0", "echo q1", "echo q2"]
    assert len(calls) == 4  # one 503 retried
    assert all(c["temperature"] == 0.0 and c["n"] == 1 and c["model"] == "served" for c in calls)


def test_openai_adapter_raises_with_the_servers_message_on_client_errors():
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(400, text="bad image"))
    )
    ad = OpenAIChat("m", base_url="http://x/v1", client=client, retries=0)
    with pytest.raises(RuntimeError, match=r"400 .*bad image"):
        ad.generate([GenerationRequest("a", chat_messages(0, "q"), [])])
