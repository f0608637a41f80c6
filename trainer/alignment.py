"""DEVA alignment reward in the training loop: what the trainer sends with each sample.

DEVA's hypervolume reward (``alignment`` component of the reward service, which calls the
embedding service) needs the sample's **image** and **query**, and optionally the image
**mask** ``m`` (``i' = i ∘ m``) derived from the policy's own decoder attention. This module
holds the run-config section and the two pieces the trainer computes:

* :func:`image_reference` — the image as a path relative to the embedding service's data
  root (the DiG data dir; the service refuses paths outside it) or as base64 PNG;
* :func:`attention_patch_masks` — one no-grad forward with ``output_attentions=True`` over
  ``prompt + completion``; for each sample the completion tokens' mean attention to the
  patches of its **last** image (DiG boxes live in image B), via
  :func:`services.embedding.attention.patch_scores`, thresholded by
  :func:`services.embedding.attention.to_patch_mask`.

Which attention implementations give weights (transformers 5.23): only ``eager``. ``sdpa``
and the flash kernels never materialise the softmax matrix and return no attentions, so the
run config rejects ``mask_from_attention`` unless ``model.attn_implementation: eager``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def encode_png_base64(image: Any) -> str:
    """A PIL image as base64 PNG (the wire form the embedding service decodes)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def image_reference(
    path: str | None, image: Any, *, mode: str, root: str | Path | None
) -> str | None:
    """The ``image`` field of a sample: ``path`` relative to ``root`` or base64 of ``image``.

    ``path`` mode with a path outside ``root`` raises (the service would refuse it with 403).
    """
    if mode == "base64":
        return None if image is None else encode_png_base64(image)
    if path is None:
        return None
    if root is None:
        return str(path)
    p, r = Path(path).resolve(), Path(root).resolve()
    if not p.is_relative_to(r):
        raise ValueError(
            f"image {p} is outside alignment.path_root {r}: the embedding service only reads "
            "files under its data root; set alignment.path_root or alignment.image: base64"
        )
    return p.relative_to(r).as_posix()


def last_image_rows(image_grid_thw: Tensor, num_images: Sequence[int]) -> list[int]:
    """Index into ``image_grid_thw`` of each sample's last image (``num_images[b] ≥ 1``)."""
    out, start = [], 0
    for k in num_images:
        if k < 1:
            raise ValueError("every sample needs at least one image for an attention mask")
        start += int(k)
        out.append(start - 1)
    return out


@torch.no_grad()
def attention_patch_masks(
    model: Any,
    model_inputs: Mapping[str, Any],
    completion_mask: Tensor,
    *,
    image_token_id: int,
    num_images: Sequence[int],
    merge_size: int = 2,
    threshold: float = 0.5,
    keep_fraction: float | None = None,
    layers: Sequence[int] | None = None,
) -> list[dict[str, Any] | None]:
    """Per sample, the wire ``PatchMask`` of its last image from text→image attention.

    ``model_inputs``: ``input_ids, attention_mask: (B, P + T)`` with the completion in the last
    ``T`` positions (right padded; ``completion_mask: (B, T)``), plus the processor's
    ``pixel_values``, ``image_grid_thw`` (and ``mm_token_type_ids`` if any). The model must use
    eager attention. For sample ``b`` with last-image grid ``(R, C)`` (merged tokens):

        s_p = mean_{l ∈ layers, h, t : completion_mask[b, t]} A_l[b, h, P + t, pos_p]

    over the last ``R·C`` image-token positions ``pos_p``, min–max scaled, then
    ``{"grid": s, "threshold": threshold}`` (or the top ``keep_fraction`` as a 0/1 grid).
    A sample without completion tokens gets ``None`` (no mask: the whole image is used).
    """
    from services.embedding.attention import patch_scores, qwen_patch_grid, to_patch_mask

    was_training = model.training
    model.eval()
    try:
        out = model(**model_inputs, output_attentions=True, use_cache=False, logits_to_keep=1)
    finally:
        model.train(was_training)
    attentions = out.attentions or ()
    if len(attentions) == 0:
        raise RuntimeError(
            'the model returned no attention weights: load it with attn_implementation="eager"'
        )
    input_ids = model_inputs["input_ids"]
    t = completion_mask.shape[1]
    p = input_ids.shape[1] - t
    grids = model_inputs["image_grid_thw"]
    masks: list[dict[str, Any] | None] = []
    for b, row in enumerate(last_image_rows(grids, num_images)):
        grid = qwen_patch_grid(grids[row].tolist(), merge_size)
        image_pos = (input_ids[b] == image_token_id).nonzero().flatten()
        image_pos = image_pos[image_pos.numel() - grid[0] * grid[1] :]
        text_pos = p + completion_mask[b].nonzero().flatten()
        if text_pos.numel() == 0:
            masks.append(None)
            continue
        scores = patch_scores(attentions, image_pos, text_pos, grid, batch_index=b, layers=layers)
        masks.append(to_patch_mask(scores, threshold=threshold, keep_fraction=keep_fraction))
    return masks
