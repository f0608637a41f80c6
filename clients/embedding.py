"""Typed clients of the embedding service: ``POST /v1/embed`` and ``POST /v1/alignment``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from clients.base import AsyncAPIClient, BatchCall, Call, SyncAPIClient, encode_json, post_call
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


def embed_call(
    images: Sequence[str] = (),
    texts: Sequence[str] = (),
    image_masks: Sequence[ImageMask | None] | None = None,
) -> Call[EmbedResponse]:
    """``POST /v1/embed``: L2-normalised embeddings of images (base64 or data-root paths)
    and texts."""
    body = EmbedRequest(
        images=list(images),
        texts=list(texts),
        image_masks=list(image_masks) if image_masks is not None else None,
    )
    return post_call("/v1/embed", body, EmbedResponse)


def alignment_batch(
    items: Iterable[ItemLike], params: HypervolumeParams | Mapping[str, Any] | None = None
) -> BatchCall[AlignmentResponse, AlignmentResponse]:
    """``POST /v1/alignment`` for ``items``, split to fit the server's limits."""
    validated = _items(items)
    if not validated:
        raise ValueError("alignment needs at least one item")
    head, tail = alignment_envelope(params)
    return BatchCall(
        "/v1/alignment",
        head,
        [encode_json(i) for i in validated],
        tail,
        "max_items",
        partial(SyncAPIClient.parse, AlignmentResponse),
        merge_alignment,
    )


class _EmbeddingMixin:
    env_url = "PRL_EMBEDDING_URL"
    default_url = "http://127.0.0.1:8002"
    limits_path = "/v1/limits"


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
        return self.send(embed_call(images, texts, image_masks))

    def alignment(
        self,
        items: Iterable[ItemLike],
        *,
        params: HypervolumeParams | Mapping[str, Any] | None = None,
    ) -> AlignmentResponse:
        """DEVA hypervolume V and reward r_v per (image, query, output) item, split to fit."""
        return self.send_batch(alignment_batch(items, params))


class AsyncEmbeddingClient(_EmbeddingMixin, AsyncAPIClient):
    """Asyncio embedding-service client."""

    async def embed(
        self,
        *,
        images: Sequence[str] = (),
        texts: Sequence[str] = (),
        image_masks: Sequence[ImageMask | None] | None = None,
    ) -> EmbedResponse:
        return await self.send(embed_call(images, texts, image_masks))

    async def alignment(
        self,
        items: Iterable[ItemLike],
        *,
        params: HypervolumeParams | Mapping[str, Any] | None = None,
    ) -> AlignmentResponse:
        return await self.send_batch(alignment_batch(items, params))
