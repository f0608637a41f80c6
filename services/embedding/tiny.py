"""Randomly initialised CLIP / SigLIP models with working offline tokenizers and processors.

No hub access exists on development machines, so tests, the demo and the benchmarks build
their encoders here, save them with ``save_pretrained`` and load them back through
:meth:`services.embedding.encoders.Encoder.load` — the code path of a real checkpoint.

* CLIP: transformers' ``CLIPTokenizer`` (real lower-casing normaliser, pre-tokenizer and
  BOS/EOS post-processor) over a byte-level vocabulary without merges: the 256 byte symbols,
  their 256 ``</w>`` end-of-word variants, ``<|startoftext|>`` and ``<|endoftext|>`` (514).
  Images: ``CLIPImageProcessorPil`` (no torchvision).
* SigLIP: a ``tokenizers`` BPE with byte fallback (``<0x00>`` … ``<0xFF>``) plus ``<pad>``,
  ``</s>``, ``<unk>``, lower-casing and an EOS post-processor, as SigLIP's tokenizer appends
  ``</s>``. Images: ``SiglipImageProcessorPil``.

Shapes: ``tiny`` (hidden 32, 2 layers, 32×32 images, patch 8; ~60 k parameters) for tests,
``vit-b-32`` (CLIP ViT-B/32: vision 768×12, text 512×12, 224 px, patch 32, projection 512)
for throughput benchmarks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

EncoderKind = Literal["clip", "siglip"]
Shape = Literal["tiny", "vit-b-32"]

_SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {
        "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                 "num_attention_heads": 2},
        "projection_dim": 16,
        "max_text_len": 32,
    },
    "vit-b-32": {
        "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                   "num_attention_heads": 12, "image_size": 224, "patch_size": 32},
        "text": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                 "num_attention_heads": 8},
        "projection_dim": 512,
        "max_text_len": 77,
    },
}  # fmt: skip


def byte_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes (byte b → ``byte_alphabet()[b]``).

    Also the byte-level alphabet of the Qwen tokenizer (:func:`trainer.tiny.build_tokenizer`).
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def clip_tokenizer(max_len: int) -> Any:
    from transformers import CLIPTokenizer

    alphabet = byte_alphabet()
    tokens = [*alphabet, *(ch + "</w>" for ch in alphabet), "<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(
        vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=max_len
    )


def siglip_tokenizer(max_len: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    tk = Tokenizer(
        models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    )
    tk.normalizer = normalizers.Lowercase()
    tk.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    tk.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_len,
    )


def _clip(shape: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    tok = clip_tokenizer(shape["max_text_len"])
    px = shape["vision"]["image_size"]
    ip = CLIPImageProcessorPil(size={"shortest_edge": px}, crop_size={"height": px, "width": px})
    text = dict(
        shape["text"],
        vocab_size=len(tok),
        max_position_embeddings=shape["max_text_len"],
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    cfg = CLIPConfig(
        text_config=text, vision_config=shape["vision"], projection_dim=shape["projection_dim"]
    )
    return CLIPModel(cfg), CLIPProcessor(image_processor=ip, tokenizer=tok)


def _siglip(shape: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor

    tok = siglip_tokenizer(shape["max_text_len"])
    px = shape["vision"]["image_size"]
    ip = SiglipImageProcessorPil(size={"height": px, "width": px})
    text = dict(
        shape["text"],
        vocab_size=len(tok),
        max_position_embeddings=shape["max_text_len"],
        projection_size=shape["vision"]["hidden_size"],
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
    )
    cfg = SiglipConfig(text_config=text, vision_config=shape["vision"])
    return SiglipModel(cfg), SiglipProcessor(image_processor=ip, tokenizer=tok)


def build_random_encoder(
    kind: EncoderKind, out: Path, *, shape: Shape = "tiny", seed: int = 0
) -> Path:
    """Build, randomly initialise (``torch.manual_seed(seed)``) and save a dual encoder."""
    import torch

    if kind not in ("clip", "siglip"):
        raise ValueError(f"unknown encoder kind {kind!r}; use 'clip' or 'siglip'")
    torch.manual_seed(seed)
    model, processor = (_clip if kind == "clip" else _siglip)(_SHAPES[shape])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_encoder(kind: EncoderKind, out: Path, seed: int = 0) -> Path:
    """``prl models tiny --kind clip|siglip --out DIR``: the ``tiny`` shape."""
    return build_random_encoder(kind, out, shape="tiny", seed=seed)
