"""Run configuration: a frozen pydantic model loaded from YAML, validated at load time.

Layout (see trainer/configs/tiny_dig_cpu.yaml)::

    run_dir: runs/tiny-dig          # checkpoints/, metrics.jsonl, config.yaml
    model: {path: DIR} | {tiny: qwen2vl, seed: 0}
    task: {name: dig, root: DIR, split: null, generate: {n: 8, size: [64, 64]}, options: {}}
    reward: {url: inprocess | http://host:port, reward: dig | {components: ..., aggregate: ...}}
    loss_type: dapo                 # a registered policy loss: grpo | bnpo | dr_grpo | dapo | gspo
                                    # | gmpo | cppo (trainer.objectives.registry.policy_losses)
    cppo: {keep_ratio: 0.5}         # loss_type cppo: share of each group kept
    papo: {enabled, gamma, eta_policy, eta_masked, view: masked|no_image, mask_ratio}
    care: {enabled, bonus, margin, accuracy_threshold, confidence_cap, ema_decay}  # GRPO-CARE
    max_steps: 3
    seed: 0
    deva: {diversity: {enabled, lambda_div, gamma, reduction: mean|sum, state_reward,
           prompt_transition}, entropy_reg: {enabled, lambda_reg}}
    pgpo: {enabled, threshold, threshold_mode, strength, w_min, w_max}   # PGPOConfig below
    curriculum: {stages: [{name: single, max_steps: 2, reward_threshold: 0.7}, ...], window,
                 threshold_units: progress|reward}                      # or null (no curriculum)
    alignment: {send_inputs, image: path|base64, mask_from_attention, mask_threshold, ...}
    train_vision_tower: null | true | false   # PIVOT switches (null: leave as loaded)
    train_projector: null | true | false
    method: grpo | sft | dpo        # sft: gold completions (``sft``); dpo: PIVOT preference training
    init_from: DIR | null           # start from a trained checkpoint (a run dir: its final/)
    sft: {cot: false, args: {...}}  # method sft: SFT-CoT traces, trl.SFTConfig fields
    dpo: {rollouts: FILE.jsonl | null, generations: 4, max_new_tokens: 16, run: {...}}
    checkpoint: {every_steps: 2, keep: 2}
    grpo: {...}                     # any other trl.GRPOConfig field (beta, num_generations, ...)

Invalid combinations are rejected with a message saying what to change.
"""

from __future__ import annotations

import dataclasses
import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainer.curriculum import CurriculumConfig
from trainer.dpo import DPORunConfig
from trainer.plugin_configs import CareConfig, CppoConfig, PapoConfig

#: GRPOConfig fields this config owns (set them at the top level or in ``checkpoint``).
OWNED_FIELDS = {
    "output_dir": "run_dir",
    "max_steps": "max_steps",
    "seed": "seed",
    "loss_type": "loss_type",
    "importance_sampling_level": "loss_type: gspo",
    "save_steps": "checkpoint.every_steps",
    "save_strategy": "checkpoint.every_steps",
    "save_total_limit": "checkpoint.keep",
}


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TinyShape(Frozen):
    """Size of a tiny random model (:func:`trainer.tiny.build_tiny_vlm`)."""

    hidden: int = Field(64, ge=8, description="text model width")
    layers: int = Field(2, ge=1, description="text model decoder layers")
    heads: int = Field(4, ge=1, description="attention heads (hidden must divide by 2·heads)")
    vision_width: int = Field(32, ge=8, description="ViT embedding width")
    vision_depth: int = Field(2, ge=1, description="ViT blocks")
    max_pixels: int = Field(
        64 * 64, ge=28 * 28, description="largest image area kept by the processor (pixels)"
    )

    @model_validator(mode="after")
    def _heads(self) -> TinyShape:
        if self.hidden % (2 * self.heads):
            raise ValueError(
                f"model.shape: hidden ({self.hidden}) must be a multiple of 2·heads "
                f"({2 * self.heads}) for rotary embeddings"
            )
        return self


class ModelSource(Frozen):
    """A checkpoint dir (``path``) or a tiny random model built into the run dir (``tiny``)."""

    path: str | None = Field(
        None,
        description="local checkpoint directory (save_pretrained layout) to train; never "
        "looked up on the Hugging Face hub. Exactly one of path and tiny",
    )
    tiny: Literal["qwen2vl", "qwen25vl"] | None = Field(
        None,
        description="build a tiny randomly initialised Qwen2-VL / Qwen2.5-VL into "
        "<run_dir>/base-model instead of loading one (CPU tests and demos)",
    )
    seed: int = Field(0, description="seed of the tiny model's random weights (tiny only)")
    shape: TinyShape = Field(TinyShape(), description="tiny model size (with ``tiny`` only)")
    attn_implementation: (
        Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3"] | None
    ) = Field(
        None,
        description="passed to from_pretrained(attn_implementation=...); 'eager' is needed for "
        "alignment.mask_from_attention; None: the transformers default",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        if (self.path is None) == (self.tiny is None):
            raise ValueError("model: set exactly one of 'path' (a checkpoint dir) or 'tiny'")
        return self


class DigGenerate(Frozen):
    """Generate DiG data into ``task.root`` when its manifest is missing."""

    n: int = Field(8, ge=1, description="number of image pairs to render")
    renderer: str = Field(
        "raster", description="DiG renderer: 'raster' (numpy, no extras) or 'blender' (bpy)"
    )
    seed: int = Field(0, description="generator seed; the same seed gives the same bytes")
    split: str = Field(
        "mixed",
        description="curriculum stage of every pair: single | dual | mixed, or all (thirds)",
    )
    size: tuple[int, int] = Field((64, 64), description="image size (width, height) in pixels")


class TaskConfig(Frozen):
    """The training task (``prl tasks`` lists the registered ones and their options)."""

    name: str = Field("dig", description="registered task name (tasks registry)")
    root: str = Field(description="dataset directory the task reads (relative: to the cwd)")
    split: str | None = Field(
        None,
        description="task split to train on; None: the task's default (all of DiG's stages). "
        "With a curriculum each stage serves its own split instead",
    )
    generate: DigGenerate | None = Field(
        None,
        description="render DiG data into root when its manifest is missing; None: root "
        "must already hold the data",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="task constructor options, e.g. {prompt: short, coords: norm1000} for DiG",
    )


class RewardConfig(Frozen):
    """``url``: reward service base URL or ``inprocess``; ``reward``: preset name or spec."""

    url: str = Field(
        "inprocess",
        description="reward service base URL (http(s)://host:port), or 'inprocess' for the "
        "same app called over the ASGI transport in this process",
    )
    reward: str | dict[str, Any] = Field(
        "dig",
        description="preset name (GET /v1/rewards, prl rewards) or a spec "
        "{components: [...], aggregate: {...}}; docs/rewards.md",
    )
    api_key: str | None = Field(
        "prl-dev-key",
        description="bearer key sent to the reward service (the dev profile's key by default); "
        "None: no Authorization header",
    )
    timeout_s: float = Field(
        60.0, gt=0, description="seconds one scoring request may take before it is retried"
    )
    retries: int = Field(
        3, ge=0, description="retries of a failed scoring request (backoff, Retry-After)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v != "inprocess" and not v.startswith(("http://", "https://")):
            raise ValueError("reward.url: use 'inprocess' or an http(s):// base URL")
        return v


class DiversityConfig(Frozen):
    """DEVA L_div (GFlowNet modified detailed balance): coefficient λ_div, γ ∈ (0, 1], and
    the three choices where the implementation may depart from the paper's printed loss
    (trainer/objectives/diversity.py states the equations)."""

    enabled: bool = Field(False, description="add DEVA's diversity loss λ_div·L_div")
    lambda_div: float = Field(0.1, ge=0.0, description="weight λ_div of L_div in the loss")
    gamma: float = Field(
        1.0, gt=0.0, le=1.0, description="γ in log r_t = log π_ref + exp(log π_ref(⊤)/γ)"
    )
    reduction: Literal["sum", "mean"] = Field(
        "mean",
        description=(
            "per completion, sum (the paper's) or mean of the squared residuals over its "
            "transitions; under sum the same lambda_div weighs L_div up to |V| times more "
            "(|V| ≈ completion length), so divide lambda_div by the typical length"
        ),
    )
    state_reward: Literal["cumulative", "last_token"] = Field(
        "cumulative",
        description=(
            "R(s_t): product of the per-token rewards r_≤t (default) or the last token's r_t "
            "alone (the printed form)"
        ),
    )
    prompt_transition: bool = Field(
        True,
        description="include the prompt → first-token transition (False: the printed sum)",
    )


class EntropyRegConfig(Frozen):
    """DEVA L_reg (global entropy regulariser, replaces KL): coefficient λ_reg."""

    enabled: bool = Field(
        False,
        description="add DEVA's global entropy regulariser λ_reg·L_reg; it replaces the "
        "token-level KL, so grpo.beta must be 0",
    )
    lambda_reg: float = Field(0.1, ge=0.0, description="weight λ_reg of L_reg in the loss")


class DevaConfig(Frozen):
    """DEVA's two loss terms on top of the policy loss (equations: trainer/objectives/),
    defined once: :class:`trainer.grpo.DevaGRPOTrainer` reads this section itself, and
    validating it needs no torch."""

    diversity: DiversityConfig = Field(
        DiversityConfig(), description="GFlowNet diversity loss L_div (off by default)"
    )
    entropy_reg: EntropyRegConfig = Field(
        EntropyRegConfig(), description="global entropy regulariser L_reg (off by default)"
    )

    @property
    def needs_reference(self) -> bool:
        """Whether a term reads the reference model (both DEVA terms do)."""
        return self.diversity.enabled or self.entropy_reg.enabled


ThresholdMode = Literal["absolute", "quantile"]


class PGPOConfig(BaseModel):
    """PGPO settings: the gate, the amplification and the weight bounds (the keyword arguments
    of :func:`trainer.pgpo.pgpo_token_weights`) and the rows per no-grad forward."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        False,
        description="weight each token's advantage by its visual dependency (one with-image "
        "and one no-image no-grad forward per generation batch)",
    )
    threshold: float = Field(0.5, ge=0.0, description="KL value (absolute) or quantile in [0, 1]")
    threshold_mode: ThresholdMode = Field(
        "quantile",
        description="how threshold reads: 'quantile' of each sequence's dependencies or an "
        "'absolute' KL value (nats); tokens above it are gated (amplified)",
    )
    strength: float = Field(
        1.0,
        ge=0.0,
        description="α: a gated token's raw weight is 1 + α·d_t/mean(d); 0 gives plain GRPO",
    )
    w_min: float = Field(
        0.5, ge=0.0, le=1.0, description="lower bound of a token weight (mass is conserved)"
    )
    w_max: float = Field(
        2.0, ge=1.0, description="upper bound of a token weight (mass is conserved)"
    )
    chunk_size: int | None = Field(None, ge=1, description="rows per no-grad forward; None = all")


class AlignmentConfig(BaseModel):
    """Run-config section ``alignment`` (DEVA alignment reward inputs).

    ``send_inputs``: attach ``image`` + ``query`` to every scored sample (needed by the
    ``alignment`` component; use a spec with it, e.g. format + f1 + miou + alignment with
    ``aggregate: harmonic``). ``image``: ``path`` (relative to ``path_root``, default the
    task root — start the embedding service with ``PRL_EMBEDDING_DATA_ROOT`` there) or
    ``base64``. ``mask_from_attention``: also send the decoder-attention patch mask
    (``mask_threshold`` on min–max scaled scores, or keep the top ``mask_keep_fraction``
    patches; ``mask_layers``: decoder layers averaged, None = all).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    send_inputs: bool = Field(
        False,
        description="attach image and query to every scored sample (the alignment "
        "component needs them)",
    )
    image: Literal["path", "base64"] = Field(
        "path",
        description="how the image travels: 'path' relative to path_root (the embedding "
        "service reads it under its data root) or 'base64' PNG in the request",
    )
    path_root: str | None = Field(
        None,
        description="directory image paths are made relative to; None: the task root",
    )
    mask_from_attention: bool = Field(
        False,
        description="also send a patch mask of the last image from the decoder's "
        "completion→image attention (needs send_inputs and eager attention)",
    )
    mask_threshold: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="keep patches whose min–max scaled attention is at least this",
    )
    mask_keep_fraction: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="keep this fraction of patches with the highest attention instead of "
        "thresholding; None: use mask_threshold",
    )
    mask_layers: tuple[int, ...] | None = Field(
        None, description="decoder layers whose attention is averaged; None: all"
    )


class DpoConfig(Frozen):
    """``method: dpo`` (PIVOT): pairs from reward-ranked rollouts, then ``trl.DPOTrainer``.

    ``rollouts``: a JSONL of groups (:func:`trainer.dpo.load_rollout_groups`); when None the
    model samples ``generations`` completions per task row and the reward service ranks them.
    """

    rollouts: str | None = Field(
        None,
        description="JSONL of scored rollout groups to build pairs from; None: sample them "
        "from the model and score them with the reward service",
    )
    generations: int = Field(4, ge=2, description="completions sampled per task row")
    max_new_tokens: int = Field(16, ge=1, description="token budget of each sampled completion")
    temperature: float = Field(1.0, gt=0.0, description="sampling temperature of the rollouts")
    max_rows: int | None = Field(None, ge=1, description="task rows to sample; None = all")
    min_margin: float = Field(
        0.0,
        ge=0.0,
        description="a group makes a pair only when best − worst reward exceeds this "
        "(0: skip exactly the tied, zero-variance groups)",
    )
    run: DPORunConfig = Field(
        DPORunConfig(), description="trl.DPOTrainer settings and what is trained"
    )


class SftConfig(Frozen):
    """``method: sft``: supervised fine-tuning on gold completions (:mod:`trainer.sft`)."""

    cot: bool = Field(
        False, description="SFT-CoT: think block describes each difference (from the scene diff)"
    )
    think: str | None = Field(
        None,
        min_length=1,
        description="the fixed text inside <think> </think> of a plain (non-CoT) gold completion; "
        "default: tasks.dig.traces.PLAIN_THINK (~115 byte tokens; tiny models train faster on a "
        "short one such as 'I compare.')",
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="trl.SFTConfig fields (learning_rate, per_device_train_batch_size, ...)",
    )

    @field_validator("args")
    @classmethod
    def _sft_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if key in OWNED_FIELDS:
                raise ValueError(f"sft.args.{key}: set '{OWNED_FIELDS[key]}' instead")
        unknown = sorted(set(v) - sft_field_names())
        if unknown:
            raise ValueError(f"sft.args: unknown SFTConfig field(s) {unknown}")
        return v

    @model_validator(mode="after")
    def _think_or_cot(self) -> SftConfig:
        if self.cot and self.think is not None:
            raise ValueError("sft: cot writes its own think; set sft.cot or sft.think, not both")
        if self.think is not None and ("<think>" in self.think or "</think>" in self.think):
            raise ValueError("sft.think is the text inside <think> </think>; leave the tags out")
        return self


class CheckpointConfig(Frozen):
    """When checkpoints are written into ``<run_dir>/checkpoints/`` (resume reads the last)."""

    every_steps: int = Field(
        50, ge=1, description="save a checkpoint every this many optimizer steps (save_steps)"
    )
    keep: int | None = Field(
        None, ge=1, description="newest checkpoints kept (save_total_limit); None: all"
    )


TRL_FIELDS_FILE = Path(__file__).with_name("trl_fields.json")
"""Field names of ``trl.GRPOConfig`` and ``trl.SFTConfig`` at the pinned TRL and transformers,
so that a run config is validated without importing TRL (and torch). A test checks the file
against the installed TRL; :func:`write_trl_fields` regenerates it after an upgrade."""


def installed_trl_fields() -> dict[str, Any]:
    """What :data:`TRL_FIELDS_FILE` holds, read from the installed TRL (imports it)."""
    import transformers
    import trl

    return {
        "trl": trl.__version__,
        "transformers": transformers.__version__,
        "GRPOConfig": sorted(f.name for f in dataclasses.fields(trl.GRPOConfig)),
        "SFTConfig": sorted(f.name for f in dataclasses.fields(trl.SFTConfig)),
    }


def write_trl_fields() -> None:
    """Rewrite :data:`TRL_FIELDS_FILE` from the installed TRL."""
    TRL_FIELDS_FILE.write_text(json.dumps(installed_trl_fields(), indent=1) + "\n")


@cache
def _trl_fields() -> dict[str, Any]:
    return json.loads(TRL_FIELDS_FILE.read_text())


def grpo_field_names() -> frozenset[str]:
    return frozenset(_trl_fields()["GRPOConfig"])


def sft_field_names() -> frozenset[str]:
    return frozenset(_trl_fields()["SFTConfig"])


class TrainConfig(Frozen):
    """One training run; see the module docstring."""

    run_dir: str = Field(
        description="output directory: config.yaml, checkpoints/, final/, metrics.jsonl "
        "(TRL's output_dir; relative paths resolve against the cwd)"
    )
    model: ModelSource = Field(description="the policy: a checkpoint dir or a tiny random model")
    task: TaskConfig = Field(description="the task and dataset the prompts come from")
    reward: RewardConfig = Field(
        RewardConfig(), description="where rewards come from and which preset or spec"
    )
    loss_type: str = Field(
        "dapo",
        description="policy loss, a name registered in trainer.objectives.policy_losses: grpo "
        "(per-sequence token mean), bnpo (local token mean), dr_grpo (Σ / (B·L_max)), dapo "
        "(tokens of the generation batch, clip-higher), gspo (sequence-level ratio), gmpo "
        "(geometric mean, log-space clip), cppo (top-|A| completions per group); validated "
        "at load time; docs/training.md 'Policy losses'",
    )
    cppo: CppoConfig = Field(CppoConfig(), description="CPPO pruning (loss_type cppo only)")
    papo: PapoConfig = Field(PapoConfig(), description="PAPO implicit perception loss")
    care: CareConfig = Field(CareConfig(), description="GRPO-CARE consistency bonus")
    max_steps: int = Field(ge=1, description="optimizer steps to train (TRL's max_steps)")
    seed: int = Field(0, description="seed of TRL/transformers (sampling, data order, init)")
    deva: DevaConfig = Field(DevaConfig(), description="DEVA's diversity and entropy terms")
    pgpo: PGPOConfig = Field(
        PGPOConfig(), description="PGPO visual-dependency token weighting of the advantages"
    )
    curriculum: CurriculumConfig | None = Field(
        None,
        description="DiG curriculum: stages served one after another (single → dual → "
        "mixed); None: train on task.split throughout",
    )
    alignment: AlignmentConfig = Field(
        AlignmentConfig(),
        description="inputs sent with each sample for DEVA's alignment reward (image, query, "
        "attention patch mask)",
    )
    train_vision_tower: bool | None = Field(
        None,
        description="PIVOT switch: train (true) or freeze (false) the vision tower; None: "
        "leave it as loaded",
    )
    train_projector: bool | None = Field(
        None,
        description="PIVOT switch: train (true) or freeze (false) the vision→text projector "
        "(merger); None: leave it as loaded",
    )
    method: Literal["grpo", "sft", "dpo"] = Field(
        "grpo",
        description="grpo: GRPO with DEVA/PGPO terms; sft: supervised fine-tuning on gold "
        "completions; dpo: PIVOT preference training on reward-ranked rollouts",
    )
    init_from: str | None = Field(
        None,
        description="start from this trained checkpoint (a dir with config.json, or a run dir "
        "whose final/ holds one); the model section then only names the base",
    )
    sft: SftConfig = Field(SftConfig(), description="settings of method: sft")
    dpo: DpoConfig = Field(DpoConfig(), description="settings of method: dpo")
    checkpoint: CheckpointConfig = Field(CheckpointConfig(), description="checkpoint cadence")
    grpo: dict[str, Any] = Field(
        default_factory=dict,
        description="any other trl.GRPOConfig field (beta, num_generations, learning_rate, "
        "use_vllm, ...), passed through; fields this config owns are refused with their name",
    )

    @field_validator("loss_type")
    @classmethod
    def _loss_type(cls, v: str) -> str:
        from services.common.registry import UnknownNameError
        from trainer.objectives.registry import check_policy_loss_name

        try:
            check_policy_loss_name(v)
        except UnknownNameError as exc:
            raise ValueError(f"loss_type: {exc}") from None
        return v

    @field_validator("grpo")
    @classmethod
    def _grpo_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if key in OWNED_FIELDS:
                raise ValueError(f"grpo.{key}: set '{OWNED_FIELDS[key]}' instead")
        unknown = sorted(set(v) - grpo_field_names())
        if unknown:
            raise ValueError(f"grpo: unknown GRPOConfig field(s) {unknown}")
        return v

    @model_validator(mode="after")
    def _combinations(self) -> TrainConfig:
        beta = float(self.grpo.get("beta", 0.0))
        if self.deva.entropy_reg.enabled and beta != 0.0:
            raise ValueError(
                "deva.entropy_reg replaces the token-level KL: set grpo.beta to 0 "
                f"(got {beta}) or disable deva.entropy_reg"
            )
        unsupported = {
            "entropy_coef": lambda x: x != 0.0,
            "use_adaptive_entropy": bool,
            "top_entropy_quantile": lambda x: x < 1.0,
            "off_policy_mask_threshold": lambda x: x is not None,
            "use_liger_kernel": bool,
        }
        for key, bad in unsupported.items():
            if key in self.grpo and bad(self.grpo[key]):
                raise ValueError(
                    f"grpo.{key}={self.grpo[key]!r} is not supported by DevaGRPOTrainer"
                )
        gens = int(self.grpo.get("num_generations", 8))
        if gens < 2:
            raise ValueError("grpo.num_generations must be >= 2 (group-relative advantages)")
        bs = int(self.grpo.get("per_device_train_batch_size", 8))
        accum = int(self.grpo.get("gradient_accumulation_steps", 1))
        steps_per_gen = int(self.grpo.get("steps_per_generation") or accum)
        if (bs * steps_per_gen) % gens:
            raise ValueError(
                f"per_device_train_batch_size × steps_per_generation ({bs} × {steps_per_gen}) "
                f"must be a multiple of grpo.num_generations ({gens})"
            )
        self._check_perception_terms()
        self._check_policy_plugins(bs, steps_per_gen, gens)
        self._check_curriculum_thresholds()
        return self

    def _check_policy_plugins(self, bs: int, steps_per_gen: int, gens: int) -> None:
        """CPPO's pruned batch must still split into steps; CARE replaces the KL penalty."""
        if self.loss_type == "cppo":
            kept = bs * steps_per_gen // gens * self.cppo.keep_count(gens)
            if kept % steps_per_gen:
                raise ValueError(
                    f"cppo: {kept} kept completions per generation batch do not split into "
                    f"steps_per_generation={steps_per_gen} equal steps; change cppo.keep_ratio "
                    "or grpo.per_device_train_batch_size"
                )
        beta = float(self.grpo.get("beta", 0.0))
        if self.care.enabled and beta != 0.0:
            raise ValueError(
                f"care replaces the KL penalty with its consistency bonus: set grpo.beta to 0 "
                f"(got {beta}) or disable care"
            )
        if (self.papo.enabled or self.care.enabled) and self.grpo.get("use_vllm"):
            raise ValueError(
                "papo / care with use_vllm is not supported (their forwards are local)"
            )

    def _check_curriculum_thresholds(self) -> None:
        """Each stage's ``reward_threshold`` against the reward spec's attainable range.

        The range comes from the spec itself (components' attainable ranges through its
        aggregator: services/reward/scoring/ranges.py). 'progress' thresholds are converted
        to reward units here (the stored config then holds the values the run compares
        against). A reward-unit threshold below what format alone earns would advance on
        format alone; one at or above the maximum can never fire (the rule is
        ``running mean > threshold``). A preset unknown to this install with a remote reward
        service cannot be resolved here: reward-unit thresholds are then left to the user.
        """
        cur = self.curriculum
        if cur is None or not any(st.reward_threshold is not None for st in cur.stages):
            return
        from schemas.reward import RewardSpec
        from services.reward.scoring import SpecError, compiled
        from services.reward.scoring.ranges import aggregate_range

        ref = self.reward.reward
        try:
            spec = compiled(ref if isinstance(ref, str) else RewardSpec.model_validate(ref))
        except SpecError as exc:
            if isinstance(ref, str) and self.reward.url != "inprocess":
                if cur.threshold_units == "reward":
                    return
                raise ValueError(
                    f"curriculum: 'progress' thresholds need the reward's range, but reward "
                    f"{ref!r} is not known to this install ({exc}); set "
                    "curriculum.threshold_units: reward with thresholds in its units"
                ) from None
            raise ValueError(f"reward.reward: {exc}") from None
        rng = aggregate_range(spec)
        floor = rng.lo if rng.format_alone is None else rng.format_alone
        # frozen model, still inside its own validator: nothing has seen it yet
        object.__setattr__(self, "curriculum", cur.in_reward_units(floor, rng.hi))
        name = repr(ref) if isinstance(ref, str) else "the given spec"
        for i, st in enumerate(self.curriculum.stages):  # type: ignore[union-attr]
            t = st.reward_threshold
            if t is None:
                continue
            where = f"curriculum.stages[{i}] ({st.name}): reward_threshold {t:g}"
            if t >= rng.hi:
                why = "can never fire (the stage advances when the mean exceeds it)"
            elif t < floor:
                why = (
                    "is passed by format alone"
                    if rng.format_alone is not None
                    else "is passed by any policy"
                )
            else:
                continue
            raise ValueError(
                f"{where} {why}; reward {name} has {rng.describe()}: "
                f"choose a threshold in [{floor:g}, {rng.hi:g})"
            )

    def _check_perception_terms(self) -> None:
        """PGPO / curriculum / alignment-mask combinations the trainer cannot run."""
        init = self.grpo.get("model_init_kwargs") or {}
        both = (self.model.attn_implementation, init.get("attn_implementation"))
        if None not in both and both[0] != both[1]:
            raise ValueError(
                f"model.attn_implementation={both[0]!r} and "
                f"grpo.model_init_kwargs.attn_implementation={both[1]!r} disagree; set one"
            )
        if self.alignment.mask_from_attention:
            if not self.alignment.send_inputs:
                raise ValueError(
                    "alignment.mask_from_attention needs alignment.send_inputs: true "
                    "(the mask travels with the sample's image)"
                )
            if self.attn_implementation != "eager":
                raise ValueError(
                    "alignment.mask_from_attention reads the decoder's attention weights, which "
                    'only attn_implementation "eager" returns (sdpa/flash do not): set '
                    f"model.attn_implementation: eager (got {self.attn_implementation!r})"
                )
        if self.curriculum is not None and int(self.grpo.get("dataloader_num_workers", 0)):
            raise ValueError(
                "curriculum: set grpo.dataloader_num_workers to 0 (worker processes hold a copy "
                "of the dataset and would not see the stage switch)"
            )
        if self.pgpo.enabled and self.grpo.get("use_vllm"):
            raise ValueError("pgpo with use_vllm is not supported (the no-image forward is local)")

    @property
    def attn_implementation(self) -> str | None:
        """The attention implementation the policy is loaded with (model or model_init_kwargs)."""
        init = self.grpo.get("model_init_kwargs") or {}
        return self.model.attn_implementation or init.get("attn_implementation")

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)


def validate_run_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate a run config given as a dict (trainer service job API); returns it normalised.

    ``run_dir`` may be left out (the job runner passes ``--output-dir``). Raises
    ``pydantic.ValidationError`` (a ``ValueError``) with the field path and the reason.
    """
    given_run_dir = "run_dir" in config
    cfg = TrainConfig.model_validate({"run_dir": "unset", **config})
    out = cfg.model_dump(mode="json")
    if not given_run_dir:
        out.pop("run_dir")
    return out


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading ``1e-5``-style numbers as floats.

    PyYAML follows YAML 1.1, whose float pattern needs a dot: ``learning_rate: 3e-5`` (and the
    JSON number ``6e-05``) load as the *string* ``"3e-5"``, which the optimizer then rejects
    deep inside TRL. YAML 1.2 and JSON read them as numbers; so does this loader.
    """


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_config_file(path: Path) -> Any:
    """The mapping in a YAML or JSON run-config file (numbers read as YAML 1.2 / JSON do)."""
    text = path.read_text()
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader subclass
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{path}: not valid YAML{at}: {problem}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML (or JSON) run config; ``overrides`` replace top-level keys.

    Relative paths (run_dir, task.root, model.path, init_from, alignment.path_root, dpo.rollouts) resolve
    against the working directory.
    """
    path = Path(path)
    raw = read_config_file(path) or {}
    raw.update(overrides or {})
    raw["run_dir"] = _resolve(raw.get("run_dir", "runs/default"))
    if isinstance(raw.get("task"), dict) and "root" in raw["task"]:
        raw["task"] = {**raw["task"], "root": _resolve(raw["task"]["root"])}
    if isinstance(raw.get("model"), dict) and raw["model"].get("path"):
        raw["model"] = {**raw["model"], "path": _resolve(raw["model"]["path"])}
    if raw.get("init_from"):
        raw["init_from"] = _resolve(raw["init_from"])
    for section, key in (("alignment", "path_root"), ("dpo", "rollouts")):
        if isinstance(raw.get(section), dict) and raw[section].get(key):
            raw[section] = {**raw[section], key: _resolve(raw[section][key])}
    return TrainConfig.model_validate(raw)


def _resolve(value: str) -> str:
    return str(Path(value).expanduser().resolve())
