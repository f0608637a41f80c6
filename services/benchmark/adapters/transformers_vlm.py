"""Local transformers VLM: batched greedy generation with left padding.

Loads through :func:`trainer.tiny.load_vlm` (``AutoModelForImageTextToText`` +
``AutoProcessor``, with the image-only Qwen processor fallback where torchvision is absent).
Prompts are rendered with the processor's chat template; a batch is left-padded so every
prompt ends at the same position and generation appends to the right.

Batch-size invariance. Left padding changes the shapes of every matmul, and floating-point
sums in a different blocking can flip a near-tie in a greedy argmax (lm-eval #1625, lmms-eval
#236: scores moved with the batch size). With ``pad_free=True`` (default) a batch is split
into groups of requests whose inputs have identical shapes (same prompt length and image
grids), so no request is ever padded and each one's computation is the same as alone; the
batch size only bounds a group's size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.benchmark.adapters.base import GenerationRequest, adapters, fill_images

log = logging.getLogger(__name__)


def load_image(path: str) -> Any:
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


@adapters.register("transformers")
class TransformersVLM:
    """``model``: a checkpoint directory (``save_pretrained`` layout)."""

    def __init__(
        self,
        model: str,
        *,
        max_new_tokens: int = 256,
        device: str = "cpu",
        dtype: str = "float32",
        pad_free: bool = True,
        name: str | None = None,
    ) -> None:
        import torch

        from trainer.tiny import load_vlm

        self.path = str(model)
        self.name = name or Path(self.path).name
        self.max_new_tokens = int(max_new_tokens)
        self.device = device
        self.dtype = dtype
        self.pad_free = pad_free
        self.model, self.processor = load_vlm(self.path, dtype=getattr(torch, dtype))
        self.model.to(device).eval()
        self.processor.tokenizer.padding_side = "left"
        tok = self.processor.tokenizer
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}

    def describe(self) -> dict[str, Any]:
        import transformers

        cfg = self.model.config
        return {
            "adapter": "transformers",
            "path": self.path,
            "revision": getattr(cfg, "_commit_hash", None) or _dir_fingerprint(self.path),
            "model_type": cfg.model_type,
            "dtype": self.dtype,
            "device": self.device,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
            "pad_free": self.pad_free,
            "transformers": transformers.__version__,
        }

    def input_size(self, image_size: tuple[int, int]) -> tuple[int, int] | None:
        """``[w, h]`` after the processor's resize: ``image_grid_thw`` × patch size."""
        if image_size not in self._sizes:
            from PIL import Image

            ip = self.processor.image_processor
            out = ip(images=[Image.new("RGB", tuple(image_size))], return_tensors="pt")
            _, gh, gw = (int(v) for v in out["image_grid_thw"][0])
            self._sizes[image_size] = (gw * ip.patch_size, gh * ip.patch_size)
        return self._sizes[image_size]

    def _encode(self, reqs: Sequence[GenerationRequest]) -> Any:
        texts = [
            self.processor.apply_chat_template(
                fill_images(r.messages, r.images, "image"),
                tokenize=False,
                add_generation_prompt=True,
            )
            for r in reqs
        ]
        images = [load_image(p) for r in reqs for p in r.images]
        return self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")

    def _shape_key(self, req: GenerationRequest) -> tuple[Any, ...]:
        enc = self._encode([req])
        grid = tuple(map(tuple, enc["image_grid_thw"].tolist())) if "image_grid_thw" in enc else ()
        return (enc["input_ids"].shape[1], grid)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        if not requests:
            return []
        if not self.pad_free:
            return self._generate_batch(requests)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(self._shape_key(r), []).append(i)
        out: list[str] = [""] * len(requests)
        for idx in groups.values():
            for i, text in zip(idx, self._generate_batch([requests[i] for i in idx]), strict=True):
                out[i] = text
        return out

    def _generate_batch(self, reqs: Sequence[GenerationRequest]) -> list[str]:
        import torch

        enc = self._encode(reqs).to(self.device)
        with torch.inference_mode():
            gen = self.model.generate(
                **enc,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.pad_token_id,
            )
        new = gen[:, enc["input_ids"].shape[1] :]
        return self.processor.batch_decode(new, skip_special_tokens=True)


def _dir_fingerprint(path: str) -> str | None:
    """Size+mtime fingerprint of the weight files (a cheap stand-in for a revision)."""
    import hashlib

    p = Path(path)
    files = sorted(p.glob("*.safetensors")) if p.is_dir() else []
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]
