"""Any OpenAI-compatible chat endpoint with images (``vllm serve``, hosted models).

``POST {base_url}/chat/completions`` with images as base64 ``data:`` URLs in
``image_url`` parts, ``temperature=0``, ``n=1`` and a fixed ``seed``. Requests of a batch are
sent concurrently (bounded by ``concurrency``); each is independent, so the batch size cannot
change an output. Transient failures (connection errors, 429, 5xx) are retried with
exponential backoff; other HTTP errors raise with the server's message.
"""

from __future__ import annotations

import base64
import mimetypes
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from services.benchmark.adapters.base import GenerationRequest, adapters, fill_images

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def data_url(path: str) -> str:
    """``data:<mime>;base64,...`` for an image file."""
    mime = mimetypes.guess_type(path)[0] or "image/png"
    with open(path, "rb") as f:
        return f"data:{mime};base64,{base64.b64encode(f.read()).decode()}"


def openai_messages(messages: list[dict[str, Any]], images: Sequence[str]) -> list[dict[str, Any]]:
    """Our chat messages → OpenAI format: image placeholders become ``image_url`` data URLs.

    Placeholders are paired with ``images`` (and their counts checked) by :func:`fill_images`
    before any file is read.
    """
    out = []
    for m in fill_images(messages, images, key="path"):
        content = m.get("content")
        if isinstance(content, list):
            content = [
                {"type": "image_url", "image_url": {"url": data_url(p["path"])}}
                if p.get("type") == "image"
                else {"type": "text", "text": p.get("text", "")}
                for p in content
            ]
        out.append({"role": m["role"], "content": content})
    return out


@adapters.register("openai")
class OpenAIChat:
    def __init__(
        self,
        model: str,
        *,
        base_url: str = "http://localhost:8000/v1",
        api_key: str | None = None,
        max_tokens: int = 256,
        seed: int = 0,
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 4,
        client: httpx.Client | None = None,
    ) -> None:
        self.name = model
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.max_tokens = int(max_tokens)
        self.seed = seed
        self.concurrency = max(1, int(concurrency))
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(timeout=timeout, headers=headers)

    def describe(self) -> dict[str, Any]:
        return {
            "adapter": "openai",
            "base_url": self.base_url,
            "served_model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
            "seed": self.seed,
        }

    def input_size(self, image_size: tuple[int, int]) -> tuple[int, int] | None:
        return None  # the server's resize is not visible from here

    def payload(self, req: GenerationRequest) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": openai_messages(req.messages, req.images),
            "temperature": 0.0,
            "n": 1,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
        }

    def _one(self, req: GenerationRequest) -> str:
        url = f"{self.base_url}/chat/completions"
        body = self.payload(req)
        for attempt in range(self.retries + 1):
            try:
                resp = self.client.post(url, json=body)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            else:
                if resp.status_code not in RETRY_STATUS or attempt == self.retries:
                    if resp.status_code >= 400:
                        raise RuntimeError(
                            f"{url} answered {resp.status_code} for sample {req.id!r}: {resp.text[:500]}"
                        )
                    return resp.json()["choices"][0]["message"]["content"] or ""
            time.sleep(min(0.5 * 2**attempt, 8.0))
        raise AssertionError("unreachable")

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        if len(requests) <= 1 or self.concurrency == 1:
            return [self._one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))
