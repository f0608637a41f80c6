"""Model adapters: transformers VLM, vLLM offline, OpenAI-compatible chat, predictions file."""

from services.benchmark.adapters.base import (
    GenerationRequest,
    ModelAdapter,
    adapter_names,
    adapters,
    get_adapter,
)

__all__ = ["GenerationRequest", "ModelAdapter", "adapter_names", "adapters", "get_adapter"]
