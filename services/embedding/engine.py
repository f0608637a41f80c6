"""What the routes do, without HTTP: limits, image loading + masking, batching, hypervolume.

Within one request identical inputs are encoded once: a GRPO group sends the same image and
query with each of its G completions, so ``/v1/alignment`` encodes ``#distinct images +
#distinct texts`` items, not ``3·N``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from schemas.embedding import (
    AlignmentRequest,
    AlignmentResponse,
    AlignmentResult,
    EmbedRequest,
    EmbedResponse,
    ImageMask,
)
from services.embedding import hypervolume as hv
from services.embedding.batcher import DynamicBatcher
from services.embedding.images import ImageInputError, ImageLimits, load_image
from services.embedding.masking import mask_image
from services.embedding.settings import EmbeddingSettings

Item = tuple[Literal["image", "text"], Image.Image | str]

INLINE_DECODE_CHARS = 512 * 1024
"""Requests whose image references total fewer characters are decoded on the event loop: a
thread hop costs more than decoding a few small PNGs (measured on a busy 2-core machine)."""


class LimitError(Exception):
    """A request over a configured count/size limit (HTTP 413)."""


def run_items(encoder: object, items: list[Item]) -> list[np.ndarray]:
    """Encode a mixed batch: images in one forward, texts in another; results in item order."""
    img_idx = [i for i, (kind, _) in enumerate(items) if kind == "image"]
    txt_idx = [i for i, (kind, _) in enumerate(items) if kind == "text"]
    out: list[np.ndarray | None] = [None] * len(items)
    if img_idx:
        vecs = encoder.encode_images([items[i][1] for i in img_idx])  # type: ignore[attr-defined]
        for i, v in zip(img_idx, vecs, strict=True):
            out[i] = v
    if txt_idx:
        vecs = encoder.encode_texts([items[i][1] for i in txt_idx])  # type: ignore[attr-defined]
        for i, v in zip(txt_idx, vecs, strict=True):
            out[i] = v
    return out  # type: ignore[return-value]


@dataclass
class Engine:
    encoder: object  # services.embedding.encoders.Encoder (duck-typed for tests)
    batcher: DynamicBatcher[Item, np.ndarray]
    settings: EmbeddingSettings

    @property
    def model_id(self) -> str:
        return self.encoder.model_id  # type: ignore[attr-defined]

    @property
    def dim(self) -> int:
        return self.encoder.dim  # type: ignore[attr-defined]

    @property
    def limits(self) -> ImageLimits:
        s = self.settings
        return ImageLimits(s.data_root, s.max_image_bytes, s.max_image_pixels)

    async def encode(self, items: list[Item]) -> list[np.ndarray]:
        return await self.batcher.submit(items, timeout=self.settings.embed_timeout_s)


def _encodable(text: str) -> bool:
    """False for a string the tokenizer cannot take (a lone surrogate from a JSON ``\\ud800``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_counts(
    settings: EmbeddingSettings, *, images: int, texts: Sequence[str], items: int = 0
) -> None:
    """413 (as :class:`LimitError`) naming the first limit the request exceeds; 422 (as
    :class:`ImageInputError`) for a text that is not valid Unicode, which would otherwise fail
    the tokenizer inside a shared batch."""
    s = settings
    checks = [
        (images, s.max_images_per_request, "images", "MAX_IMAGES_PER_REQUEST"),
        (len(texts), s.max_texts_per_request, "texts", "MAX_TEXTS_PER_REQUEST"),
        (items, s.max_items_per_request, "items", "MAX_ITEMS_PER_REQUEST"),
    ]
    for n, limit, what, env in checks:
        if n > limit:
            raise LimitError(f"request has {n} {what}; the limit is {limit} (PRL_EMBEDDING_{env})")
    for i, t in enumerate(texts):
        if not t.isascii() and not _encodable(t):
            raise ImageInputError(
                422, "bad_text", f"texts[{i}] has a lone UTF-16 surrogate; send valid Unicode"
            )
        if len(t) > s.max_text_chars:
            raise LimitError(
                f"texts[{i}] has {len(t)} characters; the limit is {s.max_text_chars} "
                "(PRL_EMBEDDING_MAX_TEXT_CHARS)"
            )


def load_masked(
    refs: Sequence[tuple[str, ImageMask | None, str]], limits: ImageLimits
) -> list[Image.Image]:
    """Decode and mask ``(ref, mask, what)`` triples (blocking; run in a thread)."""
    out = []
    for ref, m, what in refs:
        img = load_image(ref, limits, what)
        out.append(mask_image(img, m.mask, m.mask_boxes) if m is not None else img)
    return out


async def load_all(
    refs: Sequence[tuple[str, ImageMask | None, str]], limits: ImageLimits
) -> list[Image.Image]:
    """:func:`load_masked`, inline for small requests, else in a worker thread."""
    if sum(len(r) for r, _, _ in refs) < INLINE_DECODE_CHARS:
        return load_masked(refs, limits)
    return await asyncio.to_thread(load_masked, refs, limits)


def _dedupe(keys: Sequence[object]) -> tuple[list[int], list[int]]:
    """(index of first occurrence per distinct key, position of each key among the distinct)."""
    first: dict[object, int] = {}
    firsts: list[int] = []
    where: list[int] = []
    for i, k in enumerate(keys):
        if k not in first:
            first[k] = len(firsts)
            firsts.append(i)
        where.append(first[k])
    return firsts, where


def _mask_key(m: ImageMask | None) -> str:
    return "" if m is None else m.model_dump_json()


async def embed(req: EmbedRequest, engine: Engine) -> EmbedResponse:
    """``/v1/embed``: unit vectors for every image (masked when asked) and text."""
    check_counts(engine.settings, images=len(req.images), texts=req.texts)
    masks = req.image_masks or [None] * len(req.images)
    img_first, img_where = _dedupe(
        [(r, _mask_key(m)) for r, m in zip(req.images, masks, strict=True)]
    )
    txt_first, txt_where = _dedupe(req.texts)
    refs = [(req.images[i], masks[i], f"images[{i}]") for i in img_first]
    images = await load_all(refs, engine.limits)
    items: list[Item] = [("image", im) for im in images] + [
        ("text", req.texts[i]) for i in txt_first
    ]
    vecs = await engine.encode(items)
    img_vecs, txt_vecs = vecs[: len(images)], vecs[len(images) :]
    return EmbedResponse(
        model=engine.model_id,
        dim=engine.dim,
        image_embeddings=[img_vecs[j].tolist() for j in img_where],
        text_embeddings=[txt_vecs[j].tolist() for j in txt_where],
    )


async def align(req: AlignmentRequest, engine: Engine) -> AlignmentResponse:
    """``/v1/alignment``: V, r_v and the pairwise cosines per (image, query, output) item."""
    n = len(req.items)
    texts = [it.query for it in req.items] + [it.output for it in req.items]
    check_counts(engine.settings, images=n, texts=texts, items=n)
    masks = [
        ImageMask(mask=it.mask, mask_boxes=it.mask_boxes)
        if (it.mask is not None or it.mask_boxes is not None)
        else None
        for it in req.items
    ]
    img_first, img_where = _dedupe(
        [(it.image, _mask_key(m)) for it, m in zip(req.items, masks, strict=True)]
    )
    txt_first, txt_where = _dedupe(texts)
    refs = [(req.items[i].image, masks[i], f"items[{i}].image") for i in img_first]
    images = await load_all(refs, engine.limits)
    items: list[Item] = [("image", im) for im in images] + [("text", texts[i]) for i in txt_first]
    vecs = await engine.encode(items)
    img_vecs = np.stack(vecs[: len(images)])
    txt_vecs = np.stack(vecs[len(images) :])
    f_i = img_vecs[img_where]
    f_q = txt_vecs[txt_where[:n]]
    f_o = txt_vecs[txt_where[n:]]
    return alignment_response(req, engine.model_id, engine.dim, f_i, f_q, f_o)


def alignment_response(
    req: AlignmentRequest, model: str, dim: int, f_i: np.ndarray, f_q: np.ndarray, f_o: np.ndarray
) -> AlignmentResponse:
    """Pure: hypervolume results from the three (N, D) embedding matrices."""
    v = hv.volume(f_i, f_q, f_o)
    r = hv.reward(v, req.params)
    c_iq, c_io, c_qo = hv.pairwise_cosines(f_i, f_q, f_o)
    results = [
        AlignmentResult(
            id=it.id,
            volume=float(v[k]),
            reward=float(r[k]),
            cos_image_query=float(c_iq[k]),
            cos_image_output=float(c_io[k]),
            cos_query_output=float(c_qo[k]),
        )
        for k, it in enumerate(req.items)
    ]
    return AlignmentResponse(
        model=model,
        dim=dim,
        params=req.params,
        reward_range=hv.reward_range(req.params),
        results=results,
    )


__all__ = ["Engine", "ImageInputError", "LimitError", "align", "embed", "run_items"]
