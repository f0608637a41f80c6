"""Model-side pieces of the PAPO and GRPO-CARE plug-ins (the losses are in trainer.objectives).

* :func:`mask_image_patches` — PAPO's masked image, in Qwen-VL's flattened patch layout;
* :func:`text_only_logps_and_entropies` — PAPO's ``no_image`` view with gradient, on PGPO's
  text-only inputs (trainer/pgpo.py);
* :func:`answer_token_mask` — the completion tokens inside the answer tags (GRPO-CARE);
* :func:`ema_update` — GRPO-CARE's slowly updated reference model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from trainer.pgpo import build_text_only_inputs, drop_vision_tokens


def mask_image_patches(
    pixel_values: Tensor,
    image_grid_thw: Tensor,
    ratio: float,
    merge_size: int = 2,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A copy of ``pixel_values`` (N_patches, D) with a random ``ratio`` of each image's LLM
    tokens zeroed.

    Qwen-VL processors flatten an image into ``t·h·w`` patch rows (``image_grid_thw`` rows
    (t, h, w)) ordered so that each group of ``merge_size²`` consecutive rows becomes one LLM
    token; a token is masked by zeroing its rows (0 = the dataset-mean colour after the
    processor's normalisation). Per image, ``round(ratio · tokens)`` tokens (at least one)
    are drawn without replacement.
    """
    group = merge_size * merge_size
    total = int(image_grid_thw.prod(-1).sum())
    if total != pixel_values.shape[0]:
        raise ValueError(
            f"image_grid_thw covers {total} rows, pixel_values has {pixel_values.shape[0]}"
        )
    out = pixel_values.clone()
    start = 0
    for t, h, w in image_grid_thw.tolist():
        rows = int(t * h * w)
        tokens = rows // group
        n = max(1, round(ratio * tokens)) if tokens else 0
        pick = torch.randperm(tokens, generator=generator)[:n]
        idx = (start + pick.unsqueeze(1) * group + torch.arange(group)).flatten()
        out[idx.to(out.device)] = 0.0
        start += rows
    return out


def text_only_logps_and_entropies(
    model: Any,
    batch: dict[str, Any],
    vision_ids: Sequence[int],
    pad_token_id: int,
    temperature: float,
) -> tuple[Tensor, Tensor]:
    """(logps, entropies) (B, T) of the completions under the prompt without its image, with
    gradient: PGPO's text-only inputs (vision placeholder tokens dropped, M-RoPE positions of
    an image-free prompt), one forward, full softmax over the vocabulary."""
    comp, cmask = batch["completion_ids"], batch["completion_mask"]
    prompts = drop_vision_tokens(batch["prompt_ids"], batch["prompt_mask"], vision_ids)
    inputs = build_text_only_inputs(prompts, comp, cmask, pad_token_id)
    t = comp.shape[1]
    logits = model(**inputs, logits_to_keep=t + 1, use_cache=False).logits[:, :-1, :]
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    sel = logp.gather(-1, comp.unsqueeze(-1)).squeeze(-1)
    ent = -(logp.exp() * logp).sum(-1)
    return sel, ent


def answer_token_mask(
    completion_ids: Sequence[Sequence[int]],
    tokenizer: Any,
    width: int,
    open_tag: str = "<answer>",
    close_tag: str = "</answer>",
) -> Tensor:
    """(B, width) bool: tokens lying wholly inside the last ``open_tag … close_tag`` span.

    Character offsets come from decoding each token on its own (exact for the tags, which
    are ASCII); a missing close tag extends the span to the end; no open tag → all False.
    """
    out = torch.zeros((len(completion_ids), width), dtype=torch.bool)
    for i, ids in enumerate(completion_ids):
        pieces = [tokenizer.decode([int(x)]) for x in ids]
        text = "".join(pieces)
        pos = text.rfind(open_tag)
        if pos < 0:
            continue
        lo = pos + len(open_tag)
        end = text.find(close_tag, lo)
        hi = len(text) if end < 0 else end
        offset = 0
        for j, piece in enumerate(pieces[:width]):
            if offset >= lo and offset + len(piece) <= hi and piece:
                out[i, j] = True
            offset += len(piece)
    return out


@torch.no_grad()
def ema_update(ref: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """θ_ref ← decay·θ_ref + (1 − decay)·θ, parameter by parameter (names must match)."""
    ref_params = dict(ref.named_parameters())
    pairs = [(ref_params[n], p) for n, p in model.named_parameters()]
    if len(pairs) != len(ref_params):
        raise ValueError("reference and policy have different parameters")
    if not math.isfinite(decay) or not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    torch._foreach_lerp_(
        [r for r, _ in pairs], [p.detach().to(r.dtype) for r, p in pairs], 1.0 - decay
    )
