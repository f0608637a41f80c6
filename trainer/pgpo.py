"""PGPO: Perception-Grounded Policy Optimization — visual dependency and token weights.

PGPO reshapes the GRPO advantage per completion token by how much the token depends on the
image. For token ``t`` of completion ``o`` to query ``q`` with image ``I``:

    d_t = KL( π(· | I, q, o_<t) ‖ π(· | q, o_<t) )                                   (1)

the divergence between the policy's next-token distribution with and without the image. It is
computed without gradient, once per generation batch, from two forward passes: the ordinary
one (image in the prompt) and a *text-only* one whose prompt was rebuilt without the image
placeholder tokens, so that Qwen2-VL's M-RoPE positions are those of a prompt that never had
an image (see :func:`drop_vision_tokens` / :func:`text_only_prompt_ids` and
:func:`build_text_only_inputs`).

:func:`pgpo_token_weights` turns ``d`` into weights ``w`` with ``Σ_t w_t = n`` (the number of
valid tokens of the sequence), and the advantage becomes ``A_i · w_t``. TRL 1.16's
``GRPOTrainer._compute_loss`` accepts a ``(B, T)`` advantage tensor, so the trainer only has to
replace ``inputs["advantages"]`` by ``advantages[:, None] * w``.

Everything here is plain torch: no trainer, no registry side effects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from trainer.config import PGPOConfig, ThresholdMode

#: Qwen-VL tokens that make up an image/video placeholder in a prompt.
QWEN_VISION_TOKENS: tuple[str, ...] = (
    "<|vision_start|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|vision_end|>",
)


# --------------------------------------------------------------------------------------------
# (1) visual dependency
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def visual_dependency(
    logits_with_image: Tensor,
    logits_text_only: Tensor,
    mask: Tensor,
    *,
    temperature: float = 1.0,
) -> Tensor:
    """Per-token KL of the next-token distribution with vs without the image (PGPO eq. 1).

    Args:
        logits_with_image: ``(B, T, V)`` logits predicting completion token ``t`` from
            ``(image, q, o_<t)``.
        logits_text_only: ``(B, T, V)`` the same from ``(q, o_<t)``.
        mask: ``(B, T)`` valid completion tokens (bool or 0/1).
        temperature: logits are divided by it first (TRL's ``GRPOConfig.temperature``), so
            the distributions are those the completions were sampled from.

    Returns:
        ``d: (B, T)`` float32, ``d_t = Σ_v p_v (log p_v − log q_v) ≥ 0`` with
        ``log p = log_softmax(logits_with_image / τ)`` and ``log q`` likewise; 0 on masked
        positions. Computed in float32 through ``log_softmax`` (no ``exp`` of raw logits), and
        clamped at 0 against round-off.
    """
    if logits_with_image.shape != logits_text_only.shape:
        raise ValueError(
            f"logits shapes differ: {tuple(logits_with_image.shape)} vs "
            f"{tuple(logits_text_only.shape)}"
        )
    if mask.shape != logits_with_image.shape[:2]:
        raise ValueError(
            f"mask {tuple(mask.shape)} does not match logits {tuple(logits_with_image.shape[:2])}"
        )
    logp = torch.log_softmax(logits_with_image.float() / temperature, dim=-1)
    logq = torch.log_softmax(logits_text_only.float() / temperature, dim=-1)
    d = (logp.exp() * (logp - logq)).sum(dim=-1).clamp_min(0.0)
    return d * mask.to(d.dtype)


# --------------------------------------------------------------------------------------------
# (2) token weights
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PGPOWeightStats:
    """Batch summaries of one call of :func:`pgpo_token_weights` (python floats, for logging)."""

    mean_dependency: float  #: mean d_t over valid tokens
    gated_share: float  #: share of valid tokens with d_t above the threshold
    clipped_share: float  #: share of valid tokens whose weight sits at w_min or w_max
    mean_gated_weight: float  #: mean w_t over gated tokens (nan if none)
    max_weight: float  #: max w_t over valid tokens

    def as_metrics(self, prefix: str = "pgpo/") -> dict[str, float]:
        """``{"pgpo/mean_dependency": ..., ...}`` for ``trainer._metrics`` or a logger."""
        return {f"{prefix}{k}": v for k, v in self.__dict__.items()}


def dependency_threshold(
    d: Tensor, mask: Tensor, threshold: float, mode: ThresholdMode = "absolute"
) -> Tensor:
    """Per-sequence gate threshold ``τ_i: (B,)``.

    ``absolute``: ``τ_i = threshold`` (a KL value in nats).
    ``quantile``: ``τ_i`` = the ``threshold``-quantile (0 ≤ threshold ≤ 1, linear
    interpolation as ``torch.quantile``) of ``d`` over the valid tokens of sequence ``i``;
    ``+inf`` for a sequence without valid tokens.
    """
    valid = mask.bool()
    if mode == "absolute":
        return torch.full((d.shape[0],), float(threshold), dtype=d.dtype, device=d.device)
    if mode != "quantile":
        raise ValueError(f"threshold_mode must be 'absolute' or 'quantile', got {mode!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"a quantile threshold must lie in [0, 1], got {threshold}")
    # torch.nanquantile ignores NaN: put NaN on invalid positions.
    filled = torch.where(valid, d, torch.full_like(d, float("nan")))
    tau = torch.nanquantile(filled.double(), threshold, dim=1).to(d.dtype)
    return torch.nan_to_num(tau, nan=math.inf)


def _mass_scale(u: Tensor, valid: Tensor, w_min: float, w_max: float, iters: int = 64) -> Tensor:
    """Scale ``s_i`` with ``Σ_t clip(s_i u_t, w_min, w_max) = n_i`` over valid ``t`` (``(B,)``).

    ``m(s) = Σ clip(s u_t, w_min, w_max)`` is continuous and non-decreasing in ``s``, equals
    ``n w_min ≤ n`` at ``s_lo = w_min / max u`` and ``n w_max ≥ n`` at ``s_hi = w_max / min u``,
    so a root exists; bisection brackets it, then the free (unclipped) set at the bracket gives
    ``s`` in closed form: ``s = (n − n_lo w_min − n_hi w_max) / Σ_free u``.
    """
    big = torch.finfo(u.dtype).max
    n = valid.sum(dim=1).to(u.dtype)
    u_max = torch.where(valid, u, torch.zeros_like(u)).amax(dim=1).clamp_min(1e-30)
    u_min = torch.where(valid, u, torch.full_like(u, big)).amin(dim=1).clamp_min(1e-30)
    lo, hi = w_min / u_max, w_max / u_min

    def mass(s: Tensor) -> Tensor:
        w = (s[:, None] * u).clamp(w_min, w_max)
        return torch.where(valid, w, torch.zeros_like(w)).sum(dim=1)

    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        below = mass(mid) < n
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    s = 0.5 * (lo + hi)
    scaled = s[:, None] * u
    at_lo = valid & (scaled <= w_min)
    at_hi = valid & (scaled >= w_max)
    free = valid & ~at_lo & ~at_hi
    free_u = torch.where(free, u, torch.zeros_like(u)).sum(dim=1)
    rest = n - w_min * at_lo.sum(dim=1) - w_max * at_hi.sum(dim=1)
    exact = rest / free_u.clamp_min(1e-300)
    return torch.where(free_u > 0, exact, s)


@torch.no_grad()
def pgpo_token_weights(
    d: Tensor,
    mask: Tensor,
    *,
    threshold: float,
    threshold_mode: ThresholdMode = "absolute",
    strength: float = 1.0,
    w_min: float = 0.5,
    w_max: float = 2.0,
    eps: float = 1e-8,
) -> tuple[Tensor, PGPOWeightStats]:
    """Threshold-gated, mass-conserving token weights from visual dependency (PGPO).

    Exact form, for sequence ``i`` with valid tokens ``t ∈ V_i`` (``n_i = |V_i|``):

    * relative dependency ``r_t = d_t / (d̄_i + eps)``, ``d̄_i = mean_{t∈V_i} d_t``
      (scale-free: the same weights for ``d`` and ``c·d``, up to ``eps``, in quantile mode);
    * gate ``g_t = 1[d_t > τ_i]`` with ``τ_i`` from :func:`dependency_threshold`
      (``absolute``: a KL value; ``quantile``: a per-sequence quantile of ``d``);
    * raw weight ``u_t = 1 + strength · r_t`` if ``g_t`` else ``1`` — gated tokens are
      amplified in proportion to their dependency;
    * ``w_t = clip(s_i · u_t, w_min, w_max)`` with the scale ``s_i`` chosen so that
      ``Σ_{t∈V_i} w_t = n_i`` (mass conservation). Because the gated ``u_t`` exceed 1,
      ``s_i ≤ 1`` and the un-gated tokens are damped to ``s_i < 1`` whenever any token is
      gated: the learning signal moves from language-prior tokens to perception tokens
      without changing its total.

    Clipping and renormalisation are solved jointly (not clip-then-rescale, which would break
    one of the two): ``s_i`` is the root of ``Σ clip(s u_t, w_min, w_max) = n_i``
    (:func:`_mass_scale`), so every weight lies in ``[w_min, w_max]`` **and** the mass is exact.
    This needs ``w_min ≤ 1 ≤ w_max`` (checked). Consequences (tested): a token with a large
    ``u_t`` saturates at ``w_max`` and the excess mass is spread over the others in
    proportion to ``u``; if the bounds are tight the weights collapse towards 1.

    Special cases: uniform ``d`` over a sequence gives ``u`` constant, so ``w ≡ 1`` (plain
    GRPO); no gated token gives ``w ≡ 1``; ``strength = 0`` gives ``w ≡ 1``; masked positions
    get ``w = 0``; a sequence without valid tokens is all zeros.

    Args:
        d: ``(B, T)`` visual dependency, ``≥ 0`` (from :func:`visual_dependency`).
        mask: ``(B, T)`` valid completion tokens.
        threshold: KL value (``absolute``) or quantile in ``[0, 1]`` (``quantile``).
        threshold_mode: ``"absolute"`` or ``"quantile"``.
        strength: ``α ≥ 0``, the amplification per unit of relative dependency.
        w_min, w_max: weight bounds, ``0 ≤ w_min ≤ 1 ≤ w_max``.
        eps: guards ``d̄_i = 0``.

    Returns:
        ``(w, stats)``: ``w: (B, T)`` in ``d``'s dtype (computed in float64), and
        :class:`PGPOWeightStats` (mean d, gated share, clipped share, ...).
    """
    if d.shape != mask.shape:
        raise ValueError(f"d {tuple(d.shape)} and mask {tuple(mask.shape)} differ")
    if not 0.0 <= w_min <= 1.0 <= w_max:
        raise ValueError(
            f"need 0 <= w_min <= 1 <= w_max for mass conservation, got [{w_min}, {w_max}]"
        )
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    valid = mask.bool()
    dd = torch.where(valid, d.double(), torch.zeros_like(d, dtype=torch.float64))
    n = valid.sum(dim=1)
    d_bar = dd.sum(dim=1) / n.clamp_min(1)
    r = dd / (d_bar[:, None] + eps)
    tau = dependency_threshold(dd, valid, threshold, threshold_mode)
    gated = valid & (dd > tau[:, None])
    u = torch.where(gated, 1.0 + strength * r, torch.ones_like(r))
    s = _mass_scale(u, valid, w_min, w_max)
    w = (s[:, None] * u).clamp(w_min, w_max)
    w = torch.where(valid, w, torch.zeros_like(w))
    return w.to(d.dtype), _stats(dd, w, valid, gated, w_min, w_max)


def _stats(
    d: Tensor, w: Tensor, valid: Tensor, gated: Tensor, w_min: float, w_max: float
) -> PGPOWeightStats:
    n = int(valid.sum())
    n_gated = int(gated.sum())
    tol = 1e-9
    clipped = valid & (((w - w_min).abs() < tol) | ((w - w_max).abs() < tol)) & (w_min < w_max)
    return PGPOWeightStats(
        mean_dependency=float(d[valid].mean()) if n else 0.0,
        gated_share=n_gated / n if n else 0.0,
        clipped_share=float(clipped.sum()) / n if n else 0.0,
        mean_gated_weight=float(w[gated].mean()) if n_gated else float("nan"),
        max_weight=float(w[valid].max()) if n else 0.0,
    )


# --------------------------------------------------------------------------------------------
# (3) text-only inputs for Qwen2-VL / Qwen2.5-VL
# --------------------------------------------------------------------------------------------


def vision_token_ids(tokenizer: Any, tokens: Iterable[str] = QWEN_VISION_TOKENS) -> list[int]:
    """Ids of the vision placeholder tokens in ``tokenizer`` (those it knows)."""
    ids = []
    for t in tokens:
        i = tokenizer.convert_tokens_to_ids(t)
        if i is not None and i != getattr(tokenizer, "unk_token_id", None):
            ids.append(int(i))
    return ids


def drop_vision_tokens(
    prompt_ids: Tensor, prompt_mask: Tensor, drop_ids: Sequence[int]
) -> list[list[int]]:
    """Unpadded prompts with every vision placeholder token removed.

    ``prompt_ids, prompt_mask: (B, P)`` as in TRL's generation batch (left padded). For the Qwen
    chat template an image renders as exactly ``<|vision_start|><|image_pad|>…<|vision_end|>``,
    so dropping those ids gives the ids of the same conversation rendered without the image
    (identical to :func:`text_only_prompt_ids` for the byte-level tiny tokenizer and for any
    tokenizer that splits at special tokens — Qwen's does).
    """
    drop = torch.tensor(list(drop_ids), dtype=prompt_ids.dtype, device=prompt_ids.device)
    keep = prompt_mask.bool() & ~torch.isin(prompt_ids, drop)
    return [row[k].tolist() for row, k in zip(prompt_ids, keep, strict=True)]


def strip_images(conversation: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A copy of a chat conversation without its image/video content parts.

    String contents are kept; list contents lose every part whose ``type`` is ``image`` or
    ``video``. The input is not modified.
    """
    out = []
    for message in conversation:
        content = message["content"]
        if isinstance(content, list):
            content = [p for p in content if p.get("type") not in ("image", "video")]
        out.append({**message, "content": content})
    return out


def text_only_prompt_ids(
    processor: Any, prompts: Sequence[Sequence[Mapping[str, Any]]], **template_kwargs: Any
) -> list[list[int]]:
    """Token ids of each conversational prompt rendered by the processor *without* its images.

    Uses ``processor.apply_chat_template(..., add_generation_prompt=True, tokenize=True)`` as
    TRL does for the with-image prompt, so both prompts come from the same template.
    """
    ids = []
    for prompt in prompts:
        out = processor.apply_chat_template(
            conversation=[strip_images(prompt)],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            **template_kwargs,
        )
        ids.append([int(x) for x in out["input_ids"][0]])
    return ids


def build_text_only_inputs(
    prompts: Sequence[Sequence[int]],
    completion_ids: Tensor,
    completion_mask: Tensor,
    pad_token_id: int,
) -> dict[str, Tensor]:
    """Model inputs for the text-only forward pass of PGPO.

    ``prompts``: unpadded text-only prompt ids (from :func:`drop_vision_tokens` or
    :func:`text_only_prompt_ids`), one per row of ``completion_ids: (B, T)``. Prompts are
    left padded (TRL's layout) and the completion appended, giving ``input_ids`` and
    ``attention_mask: (B, P' + T)``. ``position_ids: (3, B, P' + T)`` are explicit:
    ``cumsum(attention_mask) − 1`` on the three M-RoPE axes (0 on padding), which is what
    ``get_rope_index`` yields for a sequence with no vision tokens. Without it the model
    would fall back to ``arange`` positions that count the left padding.
    """
    b = completion_ids.shape[0]
    if len(prompts) != b:
        raise ValueError(f"{len(prompts)} prompts for {b} completions")
    p = max(len(x) for x in prompts)
    device = completion_ids.device
    ids = torch.full((b, p), pad_token_id, dtype=completion_ids.dtype, device=device)
    pmask = torch.zeros((b, p), dtype=completion_mask.dtype, device=device)
    for i, row in enumerate(prompts):
        if row:
            ids[i, p - len(row) :] = torch.tensor(row, dtype=ids.dtype, device=device)
            pmask[i, p - len(row) :] = 1
    input_ids = torch.cat([ids, completion_ids], dim=1)
    # TRL masks completion tokens after EOS; attention still sees them as in the image pass.
    attention_mask = torch.cat([pmask, torch.ones_like(completion_mask)], dim=1)
    pos = (attention_mask.long().cumsum(-1) - 1).clamp_min(0) * attention_mask.long()
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": pos.unsqueeze(0).expand(3, -1, -1).contiguous(),
    }


# --------------------------------------------------------------------------------------------
# (4) model forward passes (no grad)
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def completion_logits(model: Any, logits_to_keep: int, **model_inputs: Any) -> Tensor:
    """``(B, logits_to_keep, V)`` logits predicting the last ``logits_to_keep`` input tokens.

    Runs ``model(**model_inputs, logits_to_keep=logits_to_keep + 1)`` and drops the last
    position (it predicts past the end), the convention of TRL's per-token log-probs.
    """
    out = model(**model_inputs, logits_to_keep=logits_to_keep + 1, use_cache=False)
    return out.logits[:, :-1, :]


def _image_slices(batch: Mapping[str, Any], start: int, end: int) -> dict[str, Any]:
    """Rows ``start:end`` of a TRL Qwen-VL generation batch's multimodal fields."""
    out: dict[str, Any] = {}
    grid = batch.get("image_grid_thw")
    pixels = batch.get("pixel_values")
    if grid is not None and pixels is not None:
        num_images = batch.get("num_images") or [1] * batch["prompt_ids"].shape[0]
        cum_img = [0]
        for k in num_images:
            cum_img.append(cum_img[-1] + int(k))
        rows = grid.prod(dim=-1).tolist()
        cum_rows = [0]
        for r in rows:
            cum_rows.append(cum_rows[-1] + int(r))
        i0, i1 = cum_img[start], cum_img[end]
        out["pixel_values"] = pixels[cum_rows[i0] : cum_rows[i1]]
        out["image_grid_thw"] = grid[i0:i1]
    if batch.get("mm_token_type_ids") is not None:
        out["mm_token_type_ids"] = batch["mm_token_type_ids"][start:end]
    return out


@torch.no_grad()
def batch_visual_dependency(
    model: Any,
    batch: Mapping[str, Any],
    text_only_prompts: Sequence[Sequence[int]],
    pad_token_id: int,
    *,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> Tensor:
    """``d: (B, T)`` for a TRL generation batch (the dict ``_generate_and_score_completions`` returns).

    ``batch`` needs ``prompt_ids, prompt_mask, completion_ids, completion_mask`` and the
    multimodal fields TRL stores (``pixel_values, image_grid_thw, num_images,
    mm_token_type_ids``). Two no-grad forwards per chunk of ``chunk_size`` rows (all rows if
    ``None``): with the image (positions from ``get_rope_index``, as in training) and
    text-only (:func:`build_text_only_inputs`). Memory is ``O(chunk · T · V)`` for the logits.
    """
    comp, cmask = batch["completion_ids"], batch["completion_mask"]
    b, t = comp.shape
    step = chunk_size or b
    parts = []
    was_training = model.training
    model.eval()
    try:
        for s in range(0, b, step):
            e = min(s + step, b)
            with_image = {
                "input_ids": torch.cat([batch["prompt_ids"][s:e], comp[s:e]], dim=1),
                "attention_mask": torch.cat(
                    [batch["prompt_mask"][s:e], torch.ones_like(cmask[s:e])], dim=1
                ),
                **_image_slices(batch, s, e),
            }
            if "mm_token_type_ids" in with_image:
                # TRL stores it for prompt + completion; a processor output covers the prompt
                # only: extend it with text (0) over the completion.
                mm = with_image["mm_token_type_ids"]
                if mm.shape[1] != with_image["input_ids"].shape[1]:
                    pad = torch.zeros((e - s, t), dtype=mm.dtype, device=mm.device)
                    with_image["mm_token_type_ids"] = torch.cat([mm, pad], dim=1)
            text_only = build_text_only_inputs(
                text_only_prompts[s:e], comp[s:e], cmask[s:e], pad_token_id
            )
            li = completion_logits(model, t, **with_image)
            lt = completion_logits(model, t, **text_only)
            parts.append(visual_dependency(li, lt, cmask[s:e], temperature=temperature))
    finally:
        model.train(was_training)
    return torch.cat(parts, dim=0)


# --------------------------------------------------------------------------------------------
# (5) one call for the trainer
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def pgpo_advantages(
    model: Any,
    batch: Mapping[str, Any],
    *,
    pad_token_id: int,
    vision_ids: Sequence[int],
    config: PGPOConfig,
    temperature: float = 1.0,
) -> tuple[Tensor, PGPOWeightStats]:
    """``(A_i · w_t: (B, T), stats)`` for a TRL generation batch — the whole PGPO step.

    Builds the text-only prompts by dropping ``vision_ids`` from ``batch["prompt_ids"]``
    (:func:`drop_vision_tokens`), computes ``d`` (:func:`batch_visual_dependency`) and the
    weights (:func:`pgpo_token_weights` with ``config``'s fields), and multiplies them into
    ``batch["advantages"]: (B,)``. Masked tokens get advantage 0 (they are masked in the loss
    anyway).
    """
    prompts = drop_vision_tokens(batch["prompt_ids"], batch["prompt_mask"], vision_ids)
    d = batch_visual_dependency(
        model, batch, prompts, pad_token_id, temperature=temperature, chunk_size=config.chunk_size
    )
    w, stats = pgpo_token_weights(
        d,
        batch["completion_mask"],
        threshold=config.threshold,
        threshold_mode=config.threshold_mode,
        strength=config.strength,
        w_min=config.w_min,
        w_max=config.w_max,
    )
    adv = batch["advantages"]
    return adv.unsqueeze(1).to(w.dtype) * w, stats
