"""PIVOT: train or freeze the vision tower and projector, export the encoder, measure its drift.

PIVOT ("RL makes MLLMs see better than SFT", arXiv 2510.16333) shows that RL / preference
training reshapes the vision encoder of an MLLM and that the encoder trained this way can be
exported and reused. This module gives the three pieces for Qwen2-VL / Qwen2.5-VL in
transformers 5.23:

* :func:`set_vision_trainable` — ``requires_grad`` switches for the **tower** (``model.model.
  visual`` without its ``merger``) and the **projector** (``model.model.visual.merger``, the 2×2
  patch merger + MLP that maps ViT features to the LLM width), separately;
* :func:`export_vision_encoder` — the trained tower (with its merger) saved as a standalone
  ``save_pretrained`` model (``Qwen2VisionTransformerPretrainedModel`` /
  ``Qwen2_5_VisionTransformerPretrainedModel`` + the image processor), loadable with
  :func:`load_vision_encoder`;
* :func:`drift_report` — how far an encoder moved from its base on probe images: linear CKA
  and mean cosine of mean-pooled features, for the tower output and the projector output.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

#: vision sub-config ``model_type`` → (module path, class) of the standalone vision model.
VISION_CLASSES: dict[str, tuple[str, str]] = {
    "qwen2_vl_vision": (
        "transformers.models.qwen2_vl.modeling_qwen2_vl",
        "Qwen2VisionTransformerPretrainedModel",
    ),
    "qwen2_5_vl_vision": (
        "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl",
        "Qwen2_5_VisionTransformerPretrainedModel",
    ),
}


# --------------------------------------------------------------------------------------------
# freeze / unfreeze
# --------------------------------------------------------------------------------------------


def find_visual(model: nn.Module) -> nn.Module:
    """The vision tower module of a Qwen-VL model (unwrapping PEFT / DDP wrappers).

    transformers 5.x: ``Qwen2VLForConditionalGeneration.model.visual``; transformers 4.4x
    kept it at ``.visual``; both are tried.
    """
    m: Any = model
    for _ in range(4):  # PeftModel → LoraModel → base model; DDP → module
        if hasattr(m, "get_base_model"):
            m = m.get_base_model()
        elif hasattr(m, "module") and isinstance(m.module, nn.Module):
            m = m.module
        else:
            break
    for path in ("model.visual", "visual"):
        obj: Any = m
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.Module):
            return obj
    raise AttributeError(f"{type(model).__name__} has no vision tower at .model.visual or .visual")


def vision_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """``{"tower": [...], "projector": [...]}``: the visual parameters split at ``visual.merger``."""
    visual = find_visual(model)
    merger = getattr(visual, "merger", None)
    projector_ids = {id(p) for p in merger.parameters()} if merger is not None else set()
    tower = [p for p in visual.parameters() if id(p) not in projector_ids]
    projector = [p for p in visual.parameters() if id(p) in projector_ids]
    return {"tower": tower, "projector": projector}


@dataclass(frozen=True)
class TrainableCounts:
    """Numbers of trainable / total parameters (elements) after :func:`set_vision_trainable`."""

    tower_trainable: int
    tower_total: int
    projector_trainable: int
    projector_total: int


def set_vision_trainable(
    model: nn.Module, *, tower: bool | None = None, projector: bool | None = None
) -> TrainableCounts:
    """Switch ``requires_grad`` of the vision tower and/or projector; ``None`` leaves a part as is.

    The language model is not touched. Call it after PEFT wrapping if the tower should be
    trained next to LoRA adapters (PEFT freezes the base model, this re-enables the part).
    """
    parts = vision_parameters(model)
    for name, flag in (("tower", tower), ("projector", projector)):
        if flag is not None:
            for p in parts[name]:
                p.requires_grad_(flag)

    def count(ps: list[nn.Parameter], trainable: bool) -> int:
        return sum(p.numel() for p in ps if p.requires_grad or not trainable)

    return TrainableCounts(
        tower_trainable=count(parts["tower"], True),
        tower_total=count(parts["tower"], False),
        projector_trainable=count(parts["projector"], True),
        projector_total=count(parts["projector"], False),
    )


# --------------------------------------------------------------------------------------------
# export / load
# --------------------------------------------------------------------------------------------


def _vision_class(model_type: str) -> type:
    import importlib

    try:
        module, name = VISION_CLASSES[model_type]
    except KeyError:
        raise ValueError(
            f"no standalone vision model for {model_type!r}; supported: {sorted(VISION_CLASSES)}"
        ) from None
    return getattr(importlib.import_module(module), name)


def _is_encoder_dir(path: Path) -> bool:
    cfg = json.loads((path / "config.json").read_text())
    return str(cfg.get("model_type", "")).endswith("_vision")


def export_vision_encoder(checkpoint_dir: str | Path, out_dir: str | Path) -> Path:
    """Save the vision tower (+ merger) of a VLM checkpoint as a standalone model in ``out_dir``.

    ``checkpoint_dir`` is a ``save_pretrained`` directory of a Qwen2-VL / Qwen2.5-VL model
    (a training output or a Trainer ``checkpoint-N``). ``out_dir`` receives the vision
    config + weights (``config.json``, ``model.safetensors``) and, when the checkpoint has one,
    the image processor (``preprocessor_config.json``). Loads back with
    :func:`load_vision_encoder`.
    """
    from transformers import AutoModelForImageTextToText

    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    model = AutoModelForImageTextToText.from_pretrained(str(checkpoint_dir))
    visual = find_visual(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    visual.save_pretrained(str(out_dir))
    image_processor = _load_image_processor(checkpoint_dir)
    if image_processor is not None:
        image_processor.save_pretrained(str(out_dir))
    (out_dir / "pivot_export.json").write_text(
        json.dumps(
            {
                "source": str(checkpoint_dir.resolve()),
                "source_model_type": model.config.model_type,
                "class": type(visual).__name__,
                "parameters": sum(p.numel() for p in visual.parameters()),
            },
            indent=1,
        )
    )
    logger.info("exported %s from %s to %s", type(visual).__name__, checkpoint_dir, out_dir)
    return out_dir


def _load_image_processor(path: Path) -> Any | None:
    """The checkpoint's image processor (PIL backend class named in its config), or None."""
    for name in ("preprocessor_config.json", "processor_config.json"):
        f = path / name
        if not f.is_file():
            continue
        data = json.loads(f.read_text())
        data = data.get("image_processor", data)
        cls_name = data.get("image_processor_type")
        if not cls_name:
            continue
        import transformers

        cls_name = cls_name if cls_name.endswith("Pil") else cls_name.removesuffix("Fast") + "Pil"
        cls = getattr(transformers, cls_name, None) or getattr(
            transformers, cls_name.removesuffix("Pil")
        )
        kwargs = {
            k: v for k, v in data.items() if k not in ("image_processor_type", "processor_class")
        }
        return cls(**kwargs)
    return None


def load_vision_encoder(
    path: str | Path, dtype: torch.dtype | None = None
) -> tuple[nn.Module, Any | None]:
    """``(vision model, image processor | None)`` from an exported encoder **or** a full VLM dir."""
    path = Path(path)
    if _is_encoder_dir(path):
        model_type = json.loads((path / "config.json").read_text())["model_type"]
        kwargs = {"dtype": dtype} if dtype is not None else {}
        encoder = _vision_class(model_type).from_pretrained(str(path), **kwargs)
    else:
        from transformers import AutoModelForImageTextToText

        kwargs = {"dtype": dtype} if dtype is not None else {}
        encoder = find_visual(AutoModelForImageTextToText.from_pretrained(str(path), **kwargs))
    return encoder.eval(), _load_image_processor(path)


# --------------------------------------------------------------------------------------------
# drift
# --------------------------------------------------------------------------------------------


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of two feature matrices over the same ``n`` inputs (Kornblith et al., 2019).

    ``x: (n, p)``, ``y: (n, q)``; columns are centred, then
    ``CKA = ‖Yᵀ X‖_F² / (‖Xᵀ X‖_F · ‖Yᵀ Y‖_F)`` ∈ [0, 1]. Invariant to orthogonal transforms
    and isotropic scaling of either side; 1 for identical features. Needs ``n ≥ 2``; computed
    in float64. Returns 0 when a side has no variance.
    """
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"need the same n >= 2 rows, got {tuple(x.shape)} and {tuple(y.shape)}")
    x = x.double() - x.double().mean(dim=0, keepdim=True)
    y = y.double() - y.double().mean(dim=0, keepdim=True)
    cross = (y.T @ x).pow(2).sum()
    nx, ny = torch.linalg.matrix_norm(x.T @ x), torch.linalg.matrix_norm(y.T @ y)
    if float(nx) == 0.0 or float(ny) == 0.0:
        return 0.0
    return float(cross / (nx * ny))


def mean_cosine(x: Tensor, y: Tensor) -> float:
    """Mean over rows of ``cos(x_i, y_i)`` (paired features of the same input; same width)."""
    if x.shape != y.shape:
        raise ValueError(
            f"mean cosine needs paired features of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return float(torch.nn.functional.cosine_similarity(x.double(), y.double(), dim=-1).mean())


@torch.no_grad()
def pooled_features(
    encoder: nn.Module, image_processor: Any, images: Sequence[Any]
) -> dict[str, Tensor]:
    """Mean-pooled features per image: ``{"tower": (n, embed_dim), "projector": (n, out_dim)}``.

    ``tower`` pools the last ViT block's patch features (``last_hidden_state``), ``projector``
    the merged tokens the LLM sees (``pooler_output``); mean pooling does not depend on
    Qwen2.5-VL's window ordering of patches.
    """
    batch = image_processor(images=list(images), return_tensors="pt")
    grid = batch["image_grid_thw"]
    param = next(encoder.parameters())
    out = encoder(
        batch["pixel_values"].to(param.device, param.dtype), grid_thw=grid.to(param.device)
    )
    merge = int(getattr(encoder, "spatial_merge_size", 2)) ** 2
    patches = grid.prod(dim=-1).tolist()
    tower = torch.stack([t.float().mean(dim=0) for t in out.last_hidden_state.split(patches)])
    merged = out.pooler_output
    if isinstance(merged, list | tuple):
        merged = torch.cat(list(merged))
    proj = torch.stack([t.float().mean(dim=0) for t in merged.split([p // merge for p in patches])])
    return {"tower": tower.cpu(), "projector": proj.cpu()}


def drift_report(
    base_dir: str | Path, trained_dir: str | Path, probe_images: Sequence[Any]
) -> dict[str, Any]:
    """Compare a trained vision encoder with its base on probe images (PIVOT).

    Both directories may be full VLM checkpoints or exported encoders. Returns
    ``{"n_images", "tower": {"linear_cka", "mean_cosine"}, "projector": {...},
    "weight_relative_change"}`` where the last is ``‖θ − θ₀‖ / ‖θ₀‖`` over all shared
    parameters. CKA near 1 and cosine near 1 mean little representational drift; PIVOT
    reports RL moves them further from 1 than SFT does.
    """
    if len(probe_images) < 2:
        raise ValueError("drift_report needs at least 2 probe images (CKA is over inputs)")
    base, processor = load_vision_encoder(base_dir)
    trained, trained_processor = load_vision_encoder(trained_dir)
    processor = processor or trained_processor
    if processor is None:
        raise ValueError(f"no image processor config in {base_dir} or {trained_dir}")
    fb = pooled_features(base, processor, probe_images)
    ft = pooled_features(trained, processor, probe_images)
    report: dict[str, Any] = {"n_images": len(probe_images)}
    for key in ("tower", "projector"):
        report[key] = {
            "linear_cka": linear_cka(fb[key], ft[key]),
            "mean_cosine": mean_cosine(fb[key], ft[key]),
        }
    sb, st = base.state_dict(), trained.state_dict()
    num = sum(float((st[k].double() - v.double()).pow(2).sum()) for k, v in sb.items() if k in st)
    den = sum(float(v.double().pow(2).sum()) for v in sb.values())
    report["weight_relative_change"] = (num**0.5) / (den**0.5) if den else 0.0
    return report
