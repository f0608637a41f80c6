"""``DevaGRPOTrainer``: TRL 1.16's ``GRPOTrainer`` with DEVA's diversity and entropy terms.

The policy loss is recomputed by our registered pure functions (``trainer.objectives``); with
every DEVA term off it equals TRL's own ``_compute_loss`` (loss and gradients; tested).

One forward, three per-token quantities. TRL patches the model with a fused LM head
(``trl.trainer.utils.add_fused_lm_head``): ``model(..., fused_lm_head=True)`` returns the
selected-token log-probability and the entropy per position without materialising the
(B, T, V) logits, so the EOS log-probability is not available from it. We keep the one forward
and recover it exactly from the backbone's last hidden state h (captured by a forward hook on
the backbone that the fused head itself calls) and two rows of the LM head W:

    log π(⊤ | o_<t) − log π(o_t | o_<t) = (z_⊤ − z_{o_t}) / τ,   z = W h + b,

because both share the same log-partition. Hence

    log π(⊤ | o_<t) = log π(o_t | o_<t) + ((w_⊤ − w_{o_t})·h_t + b_⊤ − b_{o_t}) / τ,

which costs one (B, T, H) gather and a dot product. Gradients reach θ through both the fused
kernel's log π(o_t | ·) and h. The reference model (no grad) is evaluated the same way, once
per generation batch. Models with logit soft-capping or logit scaling are rejected.

Perception terms, both once per generation batch and without gradient:

* **PGPO** (``pgpo.enabled``): after generation and scoring, the visual dependency
  d_t = KL(π(·|I, q, o_<t) ‖ π(·|q, o_<t)) from one with-image and one no-image forward
  (:func:`trainer.pgpo.pgpo_advantages`) turns the sequence advantages ``A: (B,)`` into
  ``A_i · w_t: (B, T)`` with Σ_t w_t = number of valid tokens; the policy losses accept
  ``(B, T)`` advantages. Logged: ``pgpo/mean_dependency``, ``pgpo/gated_share`` (+ clipped
  share, mean gated weight, max weight). The sequence advantages stay in the batch as
  ``sequence_advantages``.
* **DEVA alignment mask** (``alignment.mask_from_attention``): before the rewards are
  computed, one eager-attention forward over prompt + completion gives each sample's patch
  mask (:func:`trainer.alignment.attention_patch_masks`), passed to the reward functions as
  the ``alignment_mask`` column.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from accelerate.utils import is_peft_model
from torch import Tensor
from trl import GRPOTrainer
from trl.models import prepare_deepspeed, prepare_fsdp
from trl.trainer.utils import (
    add_fused_lm_head,
    create_model_from_path,
    disable_dropout_in_model,
    get_config_model_id,
    split_pixel_values_by_grid,
    unsplit_pixel_values_by_grid,
    use_adapter,
)

from trainer.alignment import attention_patch_masks
from trainer.config import AlignmentConfig, DevaConfig, PGPOConfig
from trainer.loss_views import (
    answer_token_mask,
    ema_update,
    mask_image_patches,
    text_only_logps_and_entropies,
)
from trainer.objectives.care import answer_confidence
from trainer.objectives.cppo import cppo_keep, cppo_saving
from trainer.objectives.diversity import diversity_loss
from trainer.objectives.entropy import entropy_regularizer
from trainer.objectives.policy import PolicyInputs, PolicyParams, k3_kl, log_importance_weights
from trainer.objectives.registry import PolicyLossSpec, policy_losses, regularizers, reward_bonuses
from trainer.pgpo import completion_logits, pgpo_advantages, vision_token_ids
from trainer.plugin_configs import CareConfig, CppoConfig, PapoConfig

log = logging.getLogger(__name__)

_FORWARD_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)


def policy_loss_name(loss_type: str, importance_sampling_level: str) -> str:
    """Registry name of the loss TRL computes for (loss_type, importance_sampling_level).

    Read from the registry's specs (``trl_exact``): grpo/bnpo/dr_grpo/dapo at token level,
    gspo = grpo at sequence level. Losses TRL does not compute (gmpo, cppo) are selected by
    name instead (``DevaGRPOTrainer(policy_loss=...)``).
    """
    exact = [s for _, s in policy_losses.items() if s.trl_exact]
    for spec in exact:
        if (spec.trl_loss_type, spec.importance_sampling_level) == (
            loss_type,
            importance_sampling_level,
        ):
            return spec.name
    if loss_type in {s.trl_loss_type for s in exact}:
        seq = [s.trl_loss_type for s in exact if s.importance_sampling_level == "sequence"]
        raise ValueError(
            f"{importance_sampling_level}-level importance sampling with loss_type "
            f"{loss_type!r} has no registered loss (sequence level, GSPO, needs loss_type "
            f"{' or '.join(repr(x) for x in seq)})"
        )
    names = sorted({s.trl_loss_type for s in exact})
    raise ValueError(f"loss_type {loss_type!r} is not supported; use one of {names}")


def select_rows(batch: dict[str, Any], keep: Tensor) -> dict[str, Any]:
    """Rows ``keep`` of a TRL generation batch: every per-completion tensor or list, images
    included (through TRL's per-sample pixel split), other entries unchanged."""
    n = batch["prompt_ids"].shape[0]
    idx = keep.tolist()
    split = split_pixel_values_by_grid(batch)
    out: dict[str, Any] = {}
    for key, value in split.items():
        if isinstance(value, list) and len(value) == n:
            out[key] = [value[i] for i in idx]
        elif isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n:
            out[key] = value[keep.to(value.device)]
        else:
            out[key] = value
    return unsplit_pixel_values_by_grid(out)


def care_bonus(completions: list[Any], **_: Any) -> list[float | None]:
    """Placeholder reward column for GRPO-CARE's bonus; ``DevaGRPOTrainer`` fills it in."""
    return [None] * len(completions)


def _unwrap_core(trainer: GRPOTrainer, model: Any) -> Any:
    """The underlying transformers model (through accelerate and PEFT wrappers).

    Cached per wrapper object: ``accelerate.utils.is_peft_model`` costs ~25 ms a call.
    """
    cache: dict[int, Any] = trainer.__dict__.setdefault("_core_cache", {})
    key = id(model)
    if key not in cache:
        core = trainer.accelerator.unwrap_model(model)
        cache[key] = (model, core.get_base_model() if is_peft_model(core) else core)
    return cache[key][1]


def eos_logps_from_hidden(
    hidden: Tensor,
    labels: Tensor,
    label_logps: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    eos_id: int,
    temperature: float,
) -> Tensor:
    """log π(⊤|o_<t) = log π(o_t|o_<t) + ((w_⊤ − w_{o_t})·h_t + b_⊤ − b_{o_t}) / τ.

    hidden: (B, T, H) states that predict the T labels (B, T); label_logps: (B, T); weight:
    (V, H) LM head. Returns (B, T).
    """
    h = hidden.to(weight.dtype)
    w_lab = weight[labels]  # (B, T, H)
    diff = (h * (weight[eos_id] - w_lab)).sum(-1)
    if bias is not None:
        diff = diff + bias[eos_id] - bias[labels]
    return label_logps + diff.to(label_logps.dtype) / temperature


class DevaGRPOTrainer(GRPOTrainer):
    """GRPO trainer whose loss is ours: registry policy loss (+β·KL) + λ_div·L_div + λ_reg·L_reg."""

    def __init__(
        self,
        *args: Any,
        deva: DevaConfig | None = None,
        pgpo: PGPOConfig | None = None,
        alignment: AlignmentConfig | None = None,
        policy_loss: str | None = None,
        cppo: CppoConfig | None = None,
        papo: PapoConfig | None = None,
        care: CareConfig | None = None,
        **kwargs: Any,
    ) -> None:
        self.deva = deva or DevaConfig()
        self.pgpo = pgpo or PGPOConfig()
        self.alignment = alignment or AlignmentConfig()
        self.cppo = cppo or CppoConfig()
        self.papo = papo or PapoConfig()
        self.care = care or CareConfig()
        if self.care.enabled:
            self._add_care_column(kwargs)
        super().__init__(*args, **kwargs)
        self._check_supported()
        self._check_perception()
        if policy_loss is not None:
            policy_losses.get(policy_loss)  # an unknown name fails here, with "did you mean"
        self.policy_loss_name = policy_loss or policy_loss_name(
            self.loss_type, self.importance_sampling_level
        )
        tok = getattr(self.processing_class, "tokenizer", self.processing_class)
        self.eos_id = int(tok.eos_token_id)
        if self.deva.needs_reference:
            self._setup_reference()
        if self.care.enabled:
            self._setup_care()
        self._papo_generator = torch.Generator().manual_seed(int(self.args.seed))

    @property
    def policy_spec(self) -> PolicyLossSpec:
        """The registry entry of the policy loss in use (``policy_loss_name``)."""
        return policy_losses.get(self.policy_loss_name)

    # ------------------------------------------------------------------ setup
    def _check_supported(self) -> None:
        args = self.args
        unsupported = {
            "top_entropy_quantile < 1": self.top_entropy_quantile < 1.0,
            "off_policy_mask_threshold": self.off_policy_mask_threshold is not None,
            "entropy_coef / use_adaptive_entropy": self._entropy_bonus_enabled,
            "use_liger_kernel": bool(args.use_liger_kernel),
        }
        bad = [k for k, v in unsupported.items() if v]
        if bad:
            raise ValueError(f"DevaGRPOTrainer does not support: {', '.join(bad)}")
        text_config = _unwrap_core(self, self.model).config.get_text_config()
        for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
            if getattr(text_config, attr, None) not in (None, 1.0):
                raise ValueError(f"EOS log-probs need plain logits; the model sets {attr}")

    def _check_perception(self) -> None:
        """PGPO needs the processor's vision tokens; attention masks need eager attention."""
        tok = getattr(self.processing_class, "tokenizer", self.processing_class)
        text_only = self.pgpo.enabled or (self.papo.enabled and self.papo.view == "no_image")
        self._vision_ids = vision_token_ids(tok) if text_only else []
        if text_only and not self._vision_ids:
            raise ValueError(
                "pgpo / papo view no_image: the tokenizer has no vision placeholder tokens to drop"
            )
        if self.alignment.mask_from_attention:
            impl = _unwrap_core(self, self.model).config._attn_implementation
            if impl != "eager":
                raise ValueError(
                    "alignment.mask_from_attention needs attention weights, which only "
                    f'attn_implementation="eager" returns; the policy uses {impl!r}'
                )

    def _add_care_column(self, kwargs: dict[str, Any]) -> None:
        """Append the ``care_bonus`` reward column (weight 1) that ``_calculate_rewards`` fills."""
        funcs = kwargs.get("reward_funcs")
        if funcs is None:
            raise ValueError("care: pass reward_funcs as a keyword argument")
        kwargs["reward_funcs"] = [*(funcs if isinstance(funcs, list) else [funcs]), care_bonus]
        args = kwargs.get("args")
        if args is not None and args.reward_weights is not None:
            args.reward_weights = [*args.reward_weights, 1.0]

    def _setup_care(self) -> None:
        """GRPO-CARE's EMA reference: a frozen copy of the policy, updated by ``ema_update``."""
        core = _unwrap_core(self, self.model)
        if is_peft_model(self.accelerator.unwrap_model(self.model)):
            raise ValueError("care: the EMA reference needs full weights (PEFT is not supported)")
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            raise ValueError("care: the EMA reference is not supported with DeepSpeed or FSDP")
        self._care_ref = copy.deepcopy(core).eval().requires_grad_(False)
        self._care_col = self.reward_func_names.index("care_bonus")

    def _setup_reference(self) -> None:
        """Make sure a reference with the entropy head exists (TRL builds one only for β ≠ 0)."""
        if is_peft_model(self.model):
            return  # the reference is the base model with adapters disabled
        if self.ref_model is None:
            kwargs = dict(self.args.model_init_kwargs or {})
            core = _unwrap_core(self, self.model)
            kwargs.setdefault("dtype", core.dtype)
            kwargs.setdefault("attn_implementation", core.config._attn_implementation)
            ref = create_model_from_path(get_config_model_id(core.config), **kwargs)
            if self.args.disable_dropout:
                disable_dropout_in_model(ref)
            self.ref_model = self._prepare_reference(ref)
        # (re)patch so the fused head also returns entropies; the outer patch wins
        add_fused_lm_head(
            _unwrap_core(self, self.ref_model),
            temperature=self.temperature,
            cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32,
            outputs=("log_probs", "entropy"),
        )

    def _prepare_reference(self, ref: Any) -> Any:
        if self.is_deepspeed_enabled:
            return prepare_deepspeed(ref, self.accelerator)
        if self.is_fsdp_enabled:
            return prepare_fsdp(ref, self.accelerator)
        return self.accelerator.prepare_model(ref, evaluation_mode=True)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        """Reload weights through ``from_pretrained`` (key conversion included).

        transformers 5 writes checkpoints in the original (hub) key layout, e.g. ``visual.*``
        and ``model.layers.*`` for Qwen2-VL, while ``Trainer._load_from_checkpoint`` loads the
        raw state dict non-strictly: every key misses and the resumed run silently keeps its
        initial weights. Plain models are therefore reloaded with ``from_pretrained``; PEFT and
        sharded (FSDP/DeepSpeed) checkpoints keep the base behaviour.
        """
        target = self.model if model is None else model
        core = self.accelerator.unwrap_model(target)
        if is_peft_model(core) or self.is_fsdp_enabled or self.is_deepspeed_enabled:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            return
        loaded = type(core).from_pretrained(resume_from_checkpoint, dtype=core.dtype)
        missing, unexpected = core.load_state_dict(loaded.state_dict(), strict=False)
        if missing or unexpected:
            raise RuntimeError(
                f"checkpoint {resume_from_checkpoint} does not match the model: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        log.info("resumed weights from %s", resume_from_checkpoint)

    # ------------------------------------------------------------------ forward
    def forward_terms(
        self,
        model: Any,
        inputs: dict[str, Any],
        compute_entropy: bool = True,
        compute_aux_loss: bool = False,
        batch_size: int | None = None,
        compute_eos: bool = True,
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
        """(logps, entropies, eos_logps, aux) over the completion tokens, one forward per chunk.

        Shapes (B, T) with T = completion length; see the module docstring for the EOS term.
        ``eos_logps`` is None unless ``compute_eos`` (no hook, no extra work then).
        """
        prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        keep = completion_ids.size(1)
        core = _unwrap_core(self, model)
        hidden: list[Tensor] = []

        def grab(_module: Any, _args: Any, output: Any) -> None:
            hidden.append(output.last_hidden_state[:, -keep - 1 : -1])

        handle = core.base_model.register_forward_hook(grab) if compute_eos else None
        try:
            logps, entropies, aux = super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                keep,
                batch_size=batch_size,
                compute_entropy=compute_entropy,
                compute_aux_loss=compute_aux_loss,
                **{k: inputs.get(k) for k in _FORWARD_KEYS},
            )
        finally:
            if handle is not None:
                handle.remove()
        if not compute_eos:
            return logps, entropies, None, aux
        head = core.get_output_embeddings()
        weight, bias = head.weight, head.bias
        if self.args.cast_lm_head_to_fp32:
            weight = weight.float()
            bias = None if bias is None else bias.float()
        eos = eos_logps_from_hidden(
            torch.cat(hidden, dim=0),
            completion_ids,
            logps,
            weight,
            bias,
            self.eos_id,
            self.temperature,
        )
        return logps, entropies, eos, aux

    @torch.no_grad()
    def reference_terms(self, inputs: dict[str, Any], batch_size: int | None) -> dict[str, Tensor]:
        """ref_per_token_logps, ref_entropies, ref_eos_logps (B, T) without grad."""
        kw = {"batch_size": batch_size, "compute_eos": self.deva.diversity.enabled}
        if self.ref_model is not None:
            lp, ent, eos, _ = self.forward_terms(self.ref_model, inputs, **kw)
        else:
            core = self.accelerator.unwrap_model(self.model)
            name = "ref" if "ref" in core.peft_config else None
            with use_adapter(core, adapter_name=name):
                lp, ent, eos, _ = self.forward_terms(self.model, inputs, **kw)
        out = {"ref_per_token_logps": lp}
        if ent is not None:
            out["ref_entropies"] = ent
        if eos is not None:
            out["ref_eos_logps"] = eos
        return out

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        """TRL's generation and scoring, plus our reference terms and PGPO token advantages.

        With DEVA on, TRL's own reference pass (run when β ≠ 0) is skipped by hiding β for the
        call (``self.beta`` is read there only for that pass); ours returns the same
        ``ref_per_token_logps`` together with the reference entropies and EOS log-probs.
        """
        beta = self.beta
        if self.deva.needs_reference:
            self.beta = 0.0
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            self.beta = beta
        mode = "train" if self.model.training else "eval"
        if self.policy_spec.prunes:
            output = self._apply_cppo(output, mode)
        if self.deva.needs_reference:
            bs = (
                self.args.per_device_train_batch_size
                if mode == "train"
                else self.args.per_device_eval_batch_size
            )
            output.update(self.reference_terms(output, batch_size=bs))
        if self.pgpo.enabled:
            self._apply_pgpo(output, mode)
        return output

    def _apply_cppo(self, output: dict[str, Any], mode: str) -> dict[str, Any]:
        """CPPO: keep the top-|A| completions per group (trainer.objectives.cppo), before any
        further forward; logs ``cppo/kept_fraction`` and ``cppo/token_saving``."""
        group = self.num_generations if mode == "train" else self.num_generations_eval
        keep = cppo_keep(output["advantages"], group, self.cppo.keep_ratio)
        stats = cppo_saving(output["completion_mask"], keep)
        pruned = select_rows(output, keep)
        local = pruned["completion_mask"].sum()
        pruned["num_items_in_batch"] = self.accelerator.gather(local).sum()
        for key, value in stats.items():
            self._metrics[mode][key].append(value)
        return pruned

    def _apply_pgpo(self, output: dict[str, Any], mode: str) -> None:
        """Replace ``advantages: (B,)`` by PGPO's ``A_i · w_t: (B, T)`` and log d_t stats."""
        tok = getattr(self.processing_class, "tokenizer", self.processing_class)
        seq_adv = output["advantages"]
        token_adv, stats = pgpo_advantages(
            self.model,
            output,
            pad_token_id=int(tok.pad_token_id),
            vision_ids=self._vision_ids,
            config=self.pgpo,
            temperature=self.temperature,
        )
        output["sequence_advantages"] = seq_adv
        output["advantages"] = token_adv.to(seq_adv.dtype)
        store = self._metrics[mode]
        for key, value in stats.as_metrics().items():
            if value == value:  # mean_gated_weight is NaN when nothing was gated
                store[key].append(value)

    def _calculate_rewards(
        self, inputs: list[dict[str, Any]], prompts: list[Any], completions: list[Any], ids: Any
    ) -> Tensor:
        """TRL's reward call; first the attention patch masks when DEVA alignment asks for them.

        Each row gets an ``alignment_mask`` entry (a ``PatchMask`` dict or None), which TRL
        passes to the reward functions as a column.
        """
        if self.alignment.mask_from_attention:
            masks = self.alignment_masks(inputs, prompts, ids)
            for row, mask in zip(inputs, masks, strict=True):
                row["alignment_mask"] = mask
        rewards = super()._calculate_rewards(inputs, prompts, completions, ids)
        if self.care.enabled:
            rewards[:, self._care_col] = self.care_bonuses(inputs, prompts, ids, rewards)
        return rewards

    @torch.no_grad()
    def care_bonuses(
        self,
        inputs: list[dict[str, Any]],
        prompts: list[Any],
        completion_ids: list[list[int]],
        rewards_per_func: Tensor,
    ) -> Tensor:
        """GRPO-CARE bonus for every completion of the gathered batch (trainer.objectives.care).

        First the EMA step of the reference, then its log-probs of this process's completions
        (with image, question and reasoning in context), c_i over the answer tokens, gathered;
        the base reward a_i is the weighted sum of the other reward columns.
        """
        ema_update(self._care_ref, _unwrap_core(self, self.model), self.care.ema_decay)
        model_inputs, cmask = self._rebuild_model_inputs(inputs, prompts, completion_ids)
        width = cmask.shape[1]
        logits = completion_logits(self._care_ref, width, **model_inputs)
        logp = torch.log_softmax(logits.float() / self.temperature, dim=-1)
        comp = model_inputs["input_ids"][:, -width:]
        ref_logps = logp.gather(-1, comp.unsqueeze(-1)).squeeze(-1)
        answer = answer_token_mask(
            completion_ids, self._tokenizer, width, self.care.answer_open, self.care.answer_close
        ).to(cmask.device)
        conf = answer_confidence(ref_logps, answer & cmask.bool(), self.care.confidence_cap)
        conf = self.accelerator.gather(conf)
        weights = self.reward_weights.to(rewards_per_func.device).clone()
        weights[self._care_col] = 0.0
        base = rewards_per_func.clone()
        base[:, self._care_col] = 0.0
        accuracy = (base * weights).nansum(dim=1)
        mode = "train" if self.model.training else "eval"
        group = self.num_generations if mode == "train" else self.num_generations_eval
        bonus, stats = reward_bonuses.get("care_consistency")(
            accuracy,
            conf.to(accuracy.dtype),
            group,
            bonus=self.care.bonus,
            margin=self.care.margin,
            accuracy_threshold=self.care.accuracy_threshold,
        )
        for key, value in stats.items():
            self._metrics[mode][key].append(value)
        return bonus.to(rewards_per_func.dtype)

    def alignment_masks(
        self, inputs: list[dict[str, Any]], prompts: list[Any], completion_ids: list[list[int]]
    ) -> list[dict[str, Any] | None]:
        """Patch masks of each sample's last image from the policy's text→image attention.

        Rebuilds the multimodal prompt inputs as TRL does (chat template + processor), appends
        the completions (right padded) and runs :func:`attention_patch_masks`.
        """
        model_inputs, cmask = self._rebuild_model_inputs(inputs, prompts, completion_ids)
        images = [row.get("images") or [row["image"]] for row in inputs]
        core = _unwrap_core(self, self.model)
        merge = int(getattr(self.processing_class.image_processor, "merge_size", 2))
        return attention_patch_masks(
            self.model,
            model_inputs,
            cmask,
            image_token_id=int(core.config.image_token_id),
            num_images=[len(x) for x in images],
            merge_size=merge,
            threshold=self.alignment.mask_threshold,
            keep_fraction=self.alignment.mask_keep_fraction,
            layers=self.alignment.mask_layers,
        )

    def _rebuild_model_inputs(
        self, inputs: list[dict[str, Any]], prompts: list[Any], completion_ids: list[list[int]]
    ) -> tuple[dict[str, Tensor], Tensor]:
        """(model inputs over prompt + completion, completion mask (B, T)) rebuilt from the
        rows TRL passes to ``_calculate_rewards``: chat template + processor as TRL does,
        completions right padded."""
        from trl.data_utils import apply_chat_template

        images = [row.get("images") or [row["image"]] for row in inputs]
        texts = [
            apply_chat_template({"prompt": p}, self.processing_class, **self.chat_template_kwargs)[
                "prompt"
            ]
            for p in prompts
        ]
        enc = self.processing_class(
            images=images, text=texts, padding=True, padding_side="left", return_tensors="pt"
        )
        enc = {k: v.to(self.accelerator.device) for k, v in enc.items()}
        width = max(len(c) for c in completion_ids)
        pad = int(self._tokenizer.pad_token_id)
        comp = torch.full((len(completion_ids), width), pad, dtype=enc["input_ids"].dtype)
        cmask = torch.zeros_like(comp)
        for i, c in enumerate(completion_ids):
            comp[i, : len(c)] = torch.tensor(c, dtype=comp.dtype)
            cmask[i, : len(c)] = 1
        comp, cmask = comp.to(self.accelerator.device), cmask.to(self.accelerator.device)
        model_inputs = {
            "input_ids": torch.cat([enc["input_ids"], comp], dim=1),
            "attention_mask": torch.cat([enc["attention_mask"], cmask], dim=1),
            "pixel_values": enc["pixel_values"],
            "image_grid_thw": enc["image_grid_thw"],
        }
        if "mm_token_type_ids" in enc:
            mm = enc["mm_token_type_ids"]
            model_inputs["mm_token_type_ids"] = torch.cat([mm, torch.zeros_like(comp)], dim=1)
        return model_inputs, cmask

    # ------------------------------------------------------------------ loss
    def _policy_params(self, inputs: dict[str, Any], mode: str) -> PolicyParams:
        token_normalizer = None
        if self.policy_spec.reduction == "global_tokens":
            norm = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if mode == "train":
                norm = (
                    norm * self.current_gradient_accumulation_steps / self.args.steps_per_generation
                )
            token_normalizer = norm
        return PolicyParams(
            epsilon_low=self.epsilon_low,
            epsilon_high=self.epsilon_high,
            delta=self.args.delta,
            max_completion_length=self.max_completion_length,
            token_normalizer=token_normalizer,
        )

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Tensor:
        mode = "train" if self.model.training else "eval"
        accum = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        logps, entropies, eos_logps, aux = self.forward_terms(
            model,
            inputs,
            compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled,
            compute_eos=self.deva.diversity.enabled,
        )
        assert entropies is not None
        old = inputs.get("old_per_token_logps")
        old = logps.detach() if old is None else old
        spec = self.policy_spec
        penalty = kl = None
        if self.beta != 0.0:
            kl = k3_kl(logps, inputs["ref_per_token_logps"])
            if self.args.use_bias_correction_kl and spec.kl_bias_correction:
                # DeepSeek-V3.2: KL_t · w_t (TRL's default)
                kl = kl * torch.exp(log_importance_weights(logps, old, mask, spec.level))
            penalty = self.beta * kl
        is_ratio = None
        if self.use_vllm and self.vllm_importance_sampling_correction:
            is_ratio = inputs["importance_sampling_ratio"]
        pin = PolicyInputs(
            logps, old, inputs["advantages"], mask, is_ratio=is_ratio, penalty=penalty
        )
        loss, metrics = spec(pin, self._policy_params(inputs, mode))
        if spec.reduction != "global_tokens":  # DAPO's normaliser already spans the batch
            loss = loss / accum
        if self.deva.diversity.enabled:
            assert eos_logps is not None
            l_div, m = diversity_loss(
                logps,
                eos_logps,
                inputs["ref_per_token_logps"],
                inputs["ref_eos_logps"],
                mask,
                gamma=self.deva.diversity.gamma,
                reduction=self.deva.diversity.reduction,
                state_reward=self.deva.diversity.state_reward,
                prompt_transition=self.deva.diversity.prompt_transition,
            )
            loss = loss + self.deva.diversity.lambda_div * l_div / accum
            metrics.update(m)
        if self.deva.entropy_reg.enabled:
            l_reg, m = entropy_regularizer(entropies, inputs["ref_entropies"], mask)
            loss = loss + self.deva.entropy_reg.lambda_reg * l_reg / accum
            metrics.update(m)
        if self.papo.enabled:
            m_logps, m_ent = self.papo_view_terms(model, inputs)
            l_papo, m = regularizers.get("papo_perception")(
                logps,
                m_logps,
                entropies,
                m_ent,
                mask,
                gamma=self.papo.gamma,
                eta_policy=self.papo.eta_policy,
                eta_masked=self.papo.eta_masked,
            )
            loss = loss + l_papo / accum
            metrics.update(m)
        if self.aux_loss_enabled and aux is not None:
            loss = loss + self.router_aux_loss_coef * aux / accum
            metrics["aux_loss"] = float(aux.detach())
        self._log_loss_metrics(mode, metrics, mask, entropies, eos_logps, kl)
        return loss

    def papo_view_terms(self, model: Any, inputs: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(logps, entropies) (B, T) of the completions under PAPO's masked view, with grad."""
        if self.papo.view == "no_image":
            tok = getattr(self.processing_class, "tokenizer", self.processing_class)
            return text_only_logps_and_entropies(
                model, inputs, self._vision_ids, int(tok.pad_token_id), self.temperature
            )
        if inputs.get("image_grid_thw") is None:
            raise ValueError("papo view masked needs Qwen-VL image inputs (image_grid_thw)")
        merge = int(getattr(self.processing_class.image_processor, "merge_size", 2))
        masked = dict(inputs)
        masked["pixel_values"] = mask_image_patches(
            inputs["pixel_values"],
            inputs["image_grid_thw"],
            self.papo.mask_ratio,
            merge,
            self._papo_generator,
        )
        lp, ent, _, _ = self.forward_terms(model, masked, compute_entropy=True, compute_eos=False)
        assert ent is not None
        return lp, ent

    def _log_loss_metrics(
        self,
        mode: str,
        metrics: dict[str, float],
        mask: Tensor,
        entropies: Tensor,
        eos_logps: Tensor | None,
        kl: Tensor | None,
    ) -> None:
        def global_mean(x: Tensor) -> float:
            local = torch.stack([(x.detach() * mask).sum(), mask.sum().float()])
            total = self.accelerator.reduce(local, reduction="sum")
            return float(total[0] / total[1].clamp(min=1.0))

        store = self._metrics[mode]
        store["entropy"].append(global_mean(entropies))
        if eos_logps is not None:
            store["eos_logp"].append(global_mean(eos_logps))
        if kl is not None:
            store["kl"].append(global_mean(kl))
        for key, value in metrics.items():
            store[key].append(value)
