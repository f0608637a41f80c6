"""CLIP / SigLIP encoders loaded from a local directory with ``AutoModel`` + ``AutoProcessor``.

The same :meth:`Encoder.load` reads a real checkpoint (``openai/clip-vit-base-patch32``
saved locally) and the tiny random models of :mod:`services.embedding.tiny`. Outputs are
float32 numpy arrays ``(N, D)`` with unit L2 norm rows, whatever the compute dtype.

Text handling per family (how each was trained):

* CLIP: causal text tower pooled at the EOS token → pad to the longest text, pass the
  attention mask; padding after EOS cannot change the pooled state.
* SigLIP: bidirectional text tower pooled at the *last* position, trained with
  ``padding="max_length"`` (64) and no attention mask → always pad to
  ``max_position_embeddings``, send ``input_ids`` only. Padding to the longest text would make
  an embedding depend on the other texts of the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from services.embedding.settings import DeviceChoice, DtypeChoice

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class DevicePlan:
    device: str
    dtype: str


def choose_device(
    device: DeviceChoice, dtype: DtypeChoice, *, cuda_available: bool, bf16_supported: bool
) -> DevicePlan:
    """Resolve ``auto`` choices: CUDA when available; on CUDA bfloat16 when supported
    (Ampere+), else float16; on CPU float32 (half precision on CPU is slow and inaccurate).
    Asking for ``cuda`` without a GPU raises instead of silently running on CPU."""
    if device == "cuda" and not cuda_available:
        raise RuntimeError(
            "device 'cuda' requested (PRL_EMBEDDING_DEVICE) but CUDA is not available"
        )
    dev = "cuda" if device == "cuda" or (device == "auto" and cuda_available) else "cpu"
    if dtype != "auto":
        return DevicePlan(dev, dtype)
    if dev == "cuda":
        return DevicePlan(dev, "bfloat16" if bf16_supported else "float16")
    return DevicePlan(dev, "float32")


def detect_device(device: DeviceChoice = "auto", dtype: DtypeChoice = "auto") -> DevicePlan:
    """:func:`choose_device` with the facts of this machine."""
    cuda = torch.cuda.is_available()
    bf16 = bool(cuda and torch.cuda.is_bf16_supported())
    return choose_device(device, dtype, cuda_available=cuda, bf16_supported=bf16)


def _pooled(out: Any) -> torch.Tensor:
    """Projected embedding: a tensor (transformers 4.x) or ``.pooler_output`` (5.x)."""
    return out if torch.is_tensor(out) else out.pooler_output


def l2_normalise(x: torch.Tensor) -> np.ndarray:
    """(N, D) → float32 numpy with unit rows (computed in float32)."""
    x = x.float()
    return torch.nn.functional.normalize(x, dim=-1).cpu().numpy()


class Encoder:
    """A dual encoder (image tower + text tower sharing one embedding space)."""

    def __init__(self, model: Any, processor: Any, plan: DevicePlan, model_id: str) -> None:
        self.model, self.processor, self.plan, self.model_id = model, processor, plan, model_id
        cfg = model.config
        self.family: str = getattr(cfg, "model_type", "clip")
        text_cfg = getattr(cfg, "text_config", cfg)
        self.max_text_len: int = int(getattr(text_cfg, "max_position_embeddings", 77))
        # CLIP projects both towers to projection_dim; SigLIP's image embedding is the vision
        # tower's pooled state (vision hidden size) and its text head projects to that size.
        vision_cfg = getattr(cfg, "vision_config", cfg)
        self.dim: int = int(getattr(cfg, "projection_dim", None) or vision_cfg.hidden_size)

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        device: DeviceChoice = "auto",
        dtype: DtypeChoice = "auto",
        model_id: str | None = None,
        attn_implementation: str | None = None,
    ) -> Encoder:
        """Load ``AutoModel`` + ``AutoProcessor`` from a local directory (never the hub)."""
        from transformers import AutoModel, AutoProcessor

        plan = detect_device(device, dtype)
        kwargs: dict[str, Any] = {"dtype": _DTYPES[plan.dtype], "local_files_only": True}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        model = AutoModel.from_pretrained(str(model_dir), **kwargs).to(plan.device).eval()
        processor = AutoProcessor.from_pretrained(str(model_dir), local_files_only=True)
        log.info(
            "loaded %s from %s on %s/%s", type(model).__name__, model_dir, plan.device, plan.dtype
        )
        return cls(model, processor, plan, model_id or Path(model_dir).name)

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.plan.dtype]

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, D) unit vectors of RGB PIL images."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        pixels = self.processor.image_processor(images=list(images), return_tensors="pt")[
            "pixel_values"
        ]
        with torch.inference_mode():
            feats = self.model.get_image_features(
                pixel_values=pixels.to(self.plan.device, self.dtype)
            )
        return l2_normalise(_pooled(feats))

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token tensors for the text tower (see the module docstring for padding rules)."""
        tok = self.processor.tokenizer
        if self.family == "siglip":
            enc = tok(
                list(texts),
                padding="max_length",
                max_length=self.max_text_len,
                truncation=True,
                return_tensors="pt",
            )
            return {"input_ids": enc["input_ids"]}
        enc = tok(
            list(texts),
            padding=True,
            max_length=self.max_text_len,
            truncation=True,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) unit vectors of texts."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = {k: v.to(self.plan.device) for k, v in self.tokenize(texts).items()}
        with torch.inference_mode():
            feats = self.model.get_text_features(**inputs)
        return l2_normalise(_pooled(feats))
