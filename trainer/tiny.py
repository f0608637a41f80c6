"""Tiny, randomly initialised Qwen2-VL / Qwen2.5-VL checkpoints built offline, and their loaders.

Nothing is downloaded. The pieces:

* tokenizer: transformers' own ``Qwen2Tokenizer`` with a 256-symbol byte-level vocabulary (no
  merges), followed by the Qwen special tokens in the real Qwen order, then ``<think>``/``</think>``
  and the tool-call tags as ordinary added tokens. Every UTF-8 string round-trips.
* chat template: the Qwen2.5-VL template shipped inside the installed ``trl`` wheel
  (``trl/chat_templates/qwen2_5_vl.jinja``), which is also the Qwen2-VL-Instruct template.
* processor: saved as the stock ``Qwen2VLProcessor`` / ``Qwen2_5_VLProcessor`` with the stock
  ``Qwen2VLVideoProcessor`` config nested in ``processor_config.json``, as a real checkpoint
  is, so ``AutoProcessor``, TRL's ``GRPOTrainer(model=PATH)`` and vLLM load it as they load a
  real Qwen2-VL (:func:`write_stock_processor_config`). In transformers 5.x that video
  sub-processor needs torchvision, which cannot be installed beside the CPU torch; there
  ``AutoProcessor`` raises ``ImportError`` for a real checkpoint and a tiny one alike, and
  :func:`load_processor` uses an *image-only* subclass instead (``ProcessorMixin`` derives its
  sub-processors from the ``__init__`` signature, so a subclass whose ``__init__`` lacks
  ``video_processor`` is image-only). Checkpoints written before this named that subclass;
  :func:`ensure_processor_support` registers it with ``AutoProcessor`` for them.
* model: hidden size 64, 2 layers; vision tower depth 2, width 32. A 64×64 image is a 4×4 patch
  grid, i.e. 4 image tokens after the 2×2 merge.

Every loader in the project goes through :func:`load_vlm` / :func:`load_processor`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from services.embedding.tiny import byte_alphabet

Kind = Literal["qwen2vl", "qwen25vl"]

#: Qwen special tokens, in the order of the real tokenizer (ids 151643.. there).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
#: Added but not special: they must survive ``skip_special_tokens=True`` decoding.
PLAIN_ADDED_TOKENS: tuple[str, ...] = ("<tool_call>", "</tool_call>", "<think>", "</think>")


@dataclass(frozen=True)
class Family:
    """transformers class names and the vision patch size of one model family."""

    model_type: str
    config_cls: str
    model_cls: str
    processor_cls: str
    patch_size: int = 14


FAMILIES: dict[str, Family] = {
    "qwen2vl": Family(
        "qwen2_vl", "Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor"
    ),
    "qwen25vl": Family(
        "qwen2_5_vl",
        "Qwen2_5_VLConfig",
        "Qwen2_5_VLForConditionalGeneration",
        "Qwen2_5_VLProcessor",
    ),
}
_BY_MODEL_TYPE = {f.model_type: f for f in FAMILIES.values()}
_IMAGE_ONLY: dict[str, type] = {}


def trl_chat_template(name: str = "qwen2_5_vl") -> str:
    """A chat template shipped in the installed trl wheel (``trl/chat_templates/<name>.jinja``)."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text()


def build_tokenizer() -> Any:
    """A real ``Qwen2Tokenizer`` over a byte vocabulary plus the Qwen special tokens (274 ids)."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    tokens = [*byte_alphabet(), *SPECIAL_TOKENS, *PLAIN_ADDED_TOKENS]
    tok = Qwen2Tokenizer(
        vocab={t: i for i, t in enumerate(tokens)},
        merges=[],
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=list(SPECIAL_TOKENS[1:]),
        errors="replace",
        model_max_length=32768,
    )
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in PLAIN_ADDED_TOKENS])
    tok.chat_template = trl_chat_template()
    return tok


def _image_only(base: type) -> type:
    """Subclass ``base`` (a Qwen-VL processor) without the torchvision-only video sub-processor."""

    def __init__(
        self: Any,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        # ProcessorMixin reads this signature: no video_processor => image-only, and
        # chat_template must be a named parameter for from_pretrained to pass it back in.
        kwargs.pop("video_processor", None)
        base.__init__(
            self,
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=None,
            chat_template=chat_template,
            **kwargs,
        )

    kind = next(k for k, f in FAMILIES.items() if f.processor_cls == base.__name__)

    def save_pretrained(self: Any, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        # saved under the stock class name, so that checkpoints written by a trainer holding
        # this processor load with stock AutoProcessor / TRL / vLLM like a real Qwen-VL
        out = base.save_pretrained(self, save_directory, *args, **kwargs)
        write_stock_processor_config(save_directory, kind)  # type: ignore[arg-type]
        return out

    name = base.__name__.replace("Processor", "ImageOnlyProcessor")
    members = {"__init__": __init__, "save_pretrained": save_pretrained, "__module__": __name__}
    return type(name, (base,), members)


def _torchvision_usable() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:
        return False
    return True


def image_only_processors() -> dict[str, type]:
    """``{model_type: image-only processor class}``, each registered with ``AutoProcessor``."""
    if not _IMAGE_ONLY:
        import transformers
        from transformers import AutoProcessor

        for fam in FAMILIES.values():
            cls = _image_only(getattr(transformers, fam.processor_cls))
            AutoProcessor.register(getattr(transformers, fam.config_cls), cls, exist_ok=True)
            _IMAGE_ONLY[fam.model_type] = cls
    return _IMAGE_ONLY


def ensure_processor_support() -> None:
    """Register the image-only processors with ``AutoProcessor`` (idempotent).

    Needed before ``AutoProcessor.from_pretrained`` on a checkpoint written by
    :func:`build_tiny_vlm`, and harmless otherwise. Skipped when torchvision works.
    """
    if not _torchvision_usable():
        image_only_processors()


def build_processor(kind: Kind, max_pixels: int = 64 * 64) -> Any:
    """Image-only processor: PIL image processor (``max_pixels``, 64×64 by default) +
    :func:`build_tokenizer`."""
    from transformers import Qwen2VLImageProcessorPil

    fam = FAMILIES[kind]
    patch = fam.patch_size
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch,
        merge_size=2,
        temporal_patch_size=2,
        size={"shortest_edge": (2 * patch) ** 2, "longest_edge": max_pixels},
    )
    tok = build_tokenizer()
    cls = image_only_processors()[fam.model_type]
    return cls(image_processor=image_processor, tokenizer=tok, chat_template=tok.chat_template)


def build_config(
    kind: Kind,
    tok: Any,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    *,
    vision_width: int = 32,
    vision_depth: int = 2,
) -> Any:
    """Model config whose special-token ids match ``tok``; mrope sections sum to head_dim/2."""
    import transformers

    fam = FAMILIES[kind]
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    half = hidden // heads // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]
    text = {
        "vocab_size": len(tok),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": max(1, heads // 2),
        "max_position_embeddings": 4096,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "mrope_section": mrope},
    }
    common = {
        "depth": vision_depth,
        "num_heads": 2,
        "patch_size": fam.patch_size,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    if kind == "qwen25vl":
        vision = {
            **common,
            "hidden_size": vision_width,
            "intermediate_size": 2 * vision_width,
            "out_hidden_size": hidden,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        }
    else:  # Qwen2-VL: embed_dim is the ViT width, hidden_size the LLM width it projects to
        vision = {**common, "embed_dim": vision_width, "hidden_size": hidden, "mlp_ratio": 2}
    return getattr(transformers, fam.config_cls)(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def build_tiny_vlm(
    kind: Kind,
    out: Path | str,
    seed: int = 0,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    vision_width: int = 32,
    vision_depth: int = 2,
    max_pixels: int = 64 * 64,
) -> Path:
    """Build a tiny random ``kind`` model + processor and ``save_pretrained`` both into ``out``.

    ``hidden``/``layers``/``heads`` set the text model (vLLM's CPU attention needs a head
    dimension of at least 32, e.g. ``hidden=128, heads=4``); ``vision_width``/``vision_depth``
    the ViT; ``max_pixels`` the largest image area the processor keeps (larger images are
    resized down; 112×112 at patch 14 is an 8×8 patch grid, 16 tokens after the 2×2 merge).

    Reload with :func:`load_vlm` (``AutoModelForImageTextToText`` / ``AutoProcessor``).
    """
    import torch
    import transformers
    from transformers import GenerationConfig

    if kind not in FAMILIES:
        raise ValueError(f"unknown tiny VLM kind {kind!r}; use one of {sorted(FAMILIES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    processor = build_processor(kind, max_pixels=max_pixels)
    config = build_config(
        kind,
        processor.tokenizer,
        hidden=hidden,
        layers=layers,
        heads=heads,
        vision_width=vision_width,
        vision_depth=vision_depth,
    )
    model = getattr(transformers, FAMILIES[kind].model_cls)(config)
    text = config.text_config
    model.generation_config = GenerationConfig(
        bos_token_id=text.bos_token_id,
        eos_token_id=[text.eos_token_id, text.pad_token_id],
        pad_token_id=text.pad_token_id,
        do_sample=True,
        temperature=1.0,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)  # names the stock processor (write_stock_processor_config)
    return out


def write_stock_processor_config(out: Path | str, kind: Kind) -> None:
    """Make ``out/processor_config.json`` name the stock processor of ``kind``, with the stock
    ``Qwen2VLVideoProcessor`` (both families use it) configured like the image processor.

    The image-only processor saves itself under its own class name, which stock
    ``AutoProcessor`` does not know: it then returns a bare tokenizer, and TRL's first VLM batch
    fails with ``KeyError: 'pixel_values'``.
    """
    path = Path(out) / "processor_config.json"
    config = json.loads(path.read_text())
    image = config["image_processor"]
    keep = ("patch_size", "temporal_patch_size", "merge_size", "size", "image_mean", "image_std")
    config["processor_class"] = FAMILIES[kind].processor_cls
    config["video_processor"] = {
        "video_processor_type": "Qwen2VLVideoProcessor",
        **{k: image[k] for k in keep if k in image},
    }
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_processor(path: Path | str) -> Any:
    """``AutoProcessor`` for a checkpoint dir; falls back to the image-only class without torchvision.

    Raises ``TypeError`` if the result is not a ``ProcessorMixin`` (``AutoProcessor`` silently
    returns a bare tokenizer when it does not know the processor class).
    """
    from transformers import AutoProcessor, ProcessorMixin

    ensure_processor_support()
    try:
        proc = AutoProcessor.from_pretrained(str(path))
    except ImportError:  # a real checkpoint's video processor needs torchvision
        proc = None
    if not isinstance(proc, ProcessorMixin):
        model_type = json.loads((Path(path) / "config.json").read_text())["model_type"]
        if model_type not in _BY_MODEL_TYPE:
            raise TypeError(f"{path}: no multimodal processor for model_type {model_type!r}")
        proc = image_only_processors()[model_type].from_pretrained(str(path))
    return proc


def load_vlm(path: Path | str, dtype: Any = None) -> tuple[Any, Any]:
    """(model, processor) from a checkpoint dir through the real ``from_pretrained`` path.

    A local-looking path that does not exist raises ``ModelPathError`` at once
    (:func:`services.common.model_paths.check_model_ref`) instead of becoming a hub lookup."""
    from transformers import AutoModelForImageTextToText

    from services.common.model_paths import check_model_ref

    check_model_ref(path)
    processor = load_processor(path)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForImageTextToText.from_pretrained(str(path), **kwargs)
    return model, processor
