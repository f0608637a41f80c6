"""The model-adapter protocol and registry.

An adapter turns chat requests (messages with ``{"type": "image"}`` placeholders + image
files) into completions. Every adapter generates greedily (temperature 0, one sample) so a
benchmark number is a function of the model and the task, and a resumed or re-batched run
reproduces it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from services.common.registry import Registry


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt: ``messages`` (chat format, image placeholders in order) and ``images``
    (file paths, one per placeholder)."""

    id: str
    messages: list[dict[str, Any]]
    images: list[str] = field(default_factory=list)


@runtime_checkable
class ModelAdapter(Protocol):
    """What the runner needs from a model.

    * ``name``: the model identity stored with results (path basename, served model name, ...).
    * ``describe()``: provenance (adapter, revision, generation settings), stored with the run.
    * ``generate(requests)``: one completion per request, in order; the batch composition must
      not change any output.
    * ``input_size(image_size)``: the ``[w, h]`` the model resizes an image of ``image_size``
      to, or None when unknown; needed only for tasks whose frame is ``input``.
    """

    name: str

    def describe(self) -> dict[str, Any]: ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]: ...

    def input_size(self, image_size: tuple[int, int]) -> tuple[int, int] | None: ...


AdapterFactory = Callable[..., ModelAdapter]

adapters: Registry[AdapterFactory] = Registry(
    "model adapter",
    builtins=tuple(
        f"services.benchmark.adapters.{m}"
        for m in ("openai_chat", "predictions", "transformers_vlm", "vllm_offline")
    ),
)


def get_adapter(name: str, /, **options: Any) -> ModelAdapter:
    """Build the adapter ``name`` (``transformers``, ``vllm``, ``openai``, ``predictions``)."""
    return adapters.get(name)(**options)


def adapter_names() -> list[str]:
    return adapters.names()


def fill_images(
    messages: list[dict[str, Any]], images: Sequence[Any], key: str = "image"
) -> list[dict[str, Any]]:
    """Copy of ``messages`` with the i-th ``{"type": "image"}`` part given ``{key: images[i]}``.

    Raises when the number of placeholders differs from the number of images.
    """
    out, i = [], 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for p in content:
                if isinstance(p, dict) and p.get("type") == "image":
                    if i >= len(images):
                        raise ValueError(
                            f"messages have more image placeholders than the {len(images)} images"
                        )
                    p = {**p, key: images[i]}
                    i += 1
                parts.append(p)
            m = {**m, "content": parts}
        out.append(m)
    if i != len(images):
        raise ValueError(f"messages have {i} image placeholders for {len(images)} images")
    return out
