"""DEVA's image mask ``m`` from the policy decoder's text→image attention (pure torch).

DEVA masks the image before embedding it, ``i' = i ∘ m``, keeping the patches the policy
actually looked at while writing its output. A trainer derives ``m`` like this:

1. Forward the policy on ``prompt + completion`` with attention weights returned:
   ``out = model(**inputs, output_attentions=True)``; ``out.attentions`` is a tuple over
   decoder layers of ``(B, H, T, T)`` tensors (query position × key position).
   **Only the eager attention implementation returns weights.** ``sdpa`` and the flash
   kernels never materialise the softmax matrix: transformers 5.x warns ("`sdpa` attention
   does not support `output_attentions=True`") and returns an empty tuple. Load the policy
   with ``attn_implementation="eager"`` for this forward, or switch it temporarily
   (``model.set_attn_implementation("eager")`` … ``"sdpa"``). Eager attention costs
   ``O(L·H·T²)`` memory, so pass only the layers you use (e.g. the last few) when ``T`` is
   long, or run this forward without gradients on a subset of the group.
2. Find the image-token positions in the sequence (Qwen2-VL / Qwen2.5-VL:
   ``input_ids == config.image_token_id``; there are ``t·h·w / merge²`` of them, row-major
   over the merged patch grid ``(h / merge, w / merge)`` from ``image_grid_thw``, see
   :func:`qwen_patch_grid`) and the text positions to attend *from* (the completion tokens,
   i.e. where the loss mask is 1).
3. :func:`patch_scores` averages attention from those text positions to each image token
   over the chosen layers and heads and reshapes to the grid; :func:`to_patch_mask` turns the
   scores into the wire form ``{"grid": scores, "threshold": t}`` (a ``schemas.reward.PatchMask``)
   that the reward/embedding services threshold and upsample onto the original image.

Scores are min–max normalised per sample, so ``threshold`` is relative: 0.5 keeps patches
with at least half of the (range-normalised) peak attention; ``keep_fraction`` instead keeps
the top-k patches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def qwen_patch_grid(image_grid_thw: Sequence[int], merge_size: int = 2) -> tuple[int, int]:
    """Rows × cols of a Qwen-VL image's LLM tokens: ``(h / merge, w / merge)`` (t = 1 images)."""
    t, h, w = (int(x) for x in image_grid_thw)
    if t != 1:
        raise ValueError(f"expected a single-frame image (t = 1), got t = {t}")
    if h % merge_size or w % merge_size:
        raise ValueError(f"grid {h}×{w} is not divisible by merge size {merge_size}")
    return h // merge_size, w // merge_size


def patch_scores(
    attentions: Sequence[torch.Tensor],
    image_positions: torch.Tensor,
    text_positions: torch.Tensor,
    grid: tuple[int, int],
    *,
    batch_index: int = 0,
    layers: Sequence[int] | None = None,
) -> torch.Tensor:
    """Mean text→image attention per image patch, shape ``grid = (R, C)``, min–max scaled to [0, 1].

    attentions: per layer ``(B, H, T, T)``; image_positions: ``(R·C,)`` long, row-major over
    the grid; text_positions: ``(Q,)`` long (the completion tokens);
    ``s_p = mean_{l ∈ layers, h, q ∈ text} A_l[b, h, q, image_positions[p]]``.
    """
    if len(attentions) == 0:
        raise ValueError(
            "no attention weights: run the forward with output_attentions=True and "
            'attn_implementation="eager" (sdpa/flash attention do not return weights)'
        )
    r, c = grid
    if image_positions.numel() != r * c:
        raise ValueError(f"{image_positions.numel()} image tokens do not fill a {r}×{c} grid")
    if text_positions.numel() == 0:
        raise ValueError("no text positions to attend from")
    chosen = [attentions[i] for i in (layers if layers is not None else range(len(attentions)))]
    acc = torch.zeros(r * c, dtype=torch.float32, device=image_positions.device)
    for a in chosen:
        rows = a[batch_index].detach().float().index_select(1, text_positions)  # (H, Q, T)
        acc += rows.index_select(2, image_positions).mean(dim=(0, 1))  # (R·C,)
    scores = acc / len(chosen)
    lo, hi = scores.min(), scores.max()
    scaled = (scores - lo) / (hi - lo) if hi > lo else torch.ones_like(scores)
    return scaled.reshape(r, c)


def keep_top_fraction(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Bool mask of the ``ceil(fraction · R·C)`` highest-scoring patches (ties broken by index)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError("fraction must be in (0, 1]")
    flat = scores.flatten()
    k = max(1, int(torch.ceil(torch.tensor(fraction * flat.numel())).item()))
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[torch.topk(flat, k).indices] = True
    return keep.reshape(scores.shape)


def to_patch_mask(
    scores: torch.Tensor, *, threshold: float | None = 0.5, keep_fraction: float | None = None
) -> dict[str, object]:
    """Wire form of the mask (``schemas.reward.PatchMask``): scores + threshold, or a 0/1 grid."""
    if keep_fraction is not None:
        grid = keep_top_fraction(scores, keep_fraction).float()
        return {"grid": grid.tolist(), "threshold": None}
    return {"grid": scores.float().tolist(), "threshold": threshold}
