"""Typed clients of the embedding service: ``POST /v1/embed`` and ``POST /v1/alignment``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx

from clients.base import AsyncAPIClient, SyncAPIClient, encode_json
from schemas.embedding import (
    AlignmentItem,
    AlignmentResponse,
    EmbedRequest,
    EmbedResponse,
    HypervolumeParams,
    ImageMask,
)

ItemLike = AlignmentItem | Mapping[str, Any]


def _items(items: Iterable[ItemLike]) -> list[AlignmentItem]:
    return [i if isinstance(i, AlignmentItem) else AlignmentItem.model_validate(i) for i in items]


def alignment_envelope(params: HypervolumeParams | Mapping[str, Any] | None) -> tuple[bytes, bytes]:
    """JSON before and after the items array of an ``/v1/alignment`` body."""
    p = params if isinstance(params, HypervolumeParams) else HypervolumeParams(**(params or {}))
    return b'{"params":' + encode_json(p) + b',"items":', b"}"


def merge_alignment(parts: Sequence[AlignmentResponse]) -> AlignmentResponse:
    """Concatenate the results of consecutive slices (model, params and range are shared)."""
    first = parts[0]
    return first.model_copy(update={"results": [r for p in parts for r in p.results]})


class _EmbeddingMixin:
    env_url = "PRL_EMBEDDING_URL"
    default_url = "http://127.0.0.1:8002"
    limits_path = "/v1/limits"

    @staticmethod
    def _parse_alignment(response: httpx.Response) -> AlignmentResponse:
        return SyncAPIClient.parse(AlignmentResponse, response)

    @staticmethod
    def _embed_request(
        images: Sequence[str], texts: Sequence[str], image_masks: Sequence[ImageMask | None] | None
    ) -> EmbedRequest:
        return EmbedRequest(
            images=list(images),
            texts=list(texts),
            image_masks=list(image_masks) if image_masks is not None else None,
        )


class EmbeddingClient(_EmbeddingMixin, SyncAPIClient):
    """Blocking embedding-service client."""

    def embed(
        self,
        *,
        images: Sequence[str] = (),
        texts: Sequence[str] = (),
        image_masks: Sequence[ImageMask | None] | None = None,
    ) -> EmbedResponse:
        """L2-normalised embeddings of images (base64 or data-root paths) and texts."""
        body = self._embed_request(images, texts, image_masks)
        return self.post_model("/v1/embed", body, EmbedResponse)

    def alignment(
        self,
        items: Iterable[ItemLike],
        *,
        params: HypervolumeParams | Mapping[str, Any] | None = None,
    ) -> AlignmentResponse:
        """DEVA hypervolume V and reward r_v per (image, query, output) item, split to fit."""
        validated = _items(items)
        if not validated:
            raise ValueError("alignment needs at least one item")
        head, tail = alignment_envelope(params)
        parts = self.post_chunked(
            "/v1/alignment",
            prefix=head,
            items=[encode_json(i) for i in validated],
            suffix=tail,
            item_key="max_items",
            parse=self._parse_alignment,
        )
        return merge_alignment(parts)


class AsyncEmbeddingClient(_EmbeddingMixin, AsyncAPIClient):
    """Asyncio embedding-service client."""

    async def embed(
        self,
        *,
        images: Sequence[str] = (),
        texts: Sequence[str] = (),
        image_masks: Sequence[ImageMask | None] | None = None,
    ) -> EmbedResponse:
        body = self._embed_request(images, texts, image_masks)
        return await self.post_model("/v1/embed", body, EmbedResponse)

    async def alignment(
        self,
        items: Iterable[ItemLike],
        *,
        params: HypervolumeParams | Mapping[str, Any] | None = None,
    ) -> AlignmentResponse:
        validated = _items(items)
        if not validated:
            raise ValueError("alignment needs at least one item")
        head, tail = alignment_envelope(params)
        parts = await self.post_chunked(
            "/v1/alignment",
            prefix=head,
            items=[encode_json(i) for i in validated],
            suffix=tail,
            item_key="max_items",
            parse=self._parse_alignment,
        )
        return merge_alignment(parts)
