from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from trainer.tiny import build_tiny_vlm, build_tokenizer, load_processor, load_vlm

pytestmark = pytest.mark.torch


def test_tokenizer_round_trips_utf8_and_knows_qwen_specials() -> None:
    tok = build_tokenizer()
    text = "<think>réseau 猫</think><answer>[1, 2, 3, 4]</answer>"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.convert_tokens_to_ids("<|image_pad|>") == 256 + 12
    # <think> is added but not special: it survives skip_special_tokens
    assert "<think>" in tok.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("kind", ["qwen2vl", "qwen25vl"])
def test_round_trip_through_auto_classes_with_two_images(kind: str, tmp_path: Path) -> None:
    out = build_tiny_vlm(kind, tmp_path / kind, seed=1)  # type: ignore[arg-type]
    model, proc = load_vlm(out)
    assert type(proc).__name__.endswith("ImageOnlyProcessor")
    assert model.config.model_type == {"qwen2vl": "qwen2_vl", "qwen25vl": "qwen2_5_vl"}[kind]
    msgs = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "diff?"}],
        }
    ]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text.count("<|vision_start|>") == 2
    images = [Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 48), "blue")]
    enc = proc(text=[text], images=images, return_tensors="pt")
    assert enc["image_grid_thw"].shape == (2, 3)
    n_pad = int((enc["input_ids"] == model.config.image_token_id).sum())
    assert n_pad == int(enc["image_grid_thw"].prod(-1).sum()) // 4  # 2x2 merge
    out_ids = model.generate(**enc, max_new_tokens=4, min_new_tokens=4)
    assert out_ids.shape[1] == enc["input_ids"].shape[1] + 4


def test_same_seed_same_weights(tmp_path: Path) -> None:
    a, _ = load_vlm(build_tiny_vlm("qwen2vl", tmp_path / "a", seed=3))
    b, _ = load_vlm(build_tiny_vlm("qwen2vl", tmp_path / "b", seed=3))
    c, _ = load_vlm(build_tiny_vlm("qwen2vl", tmp_path / "c", seed=4))
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert name in pa
    assert (pa[name] == pb[name]).all() and not (pa[name] == pc[name]).all()


def test_load_processor_rejects_non_vlm_dir(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    build_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(TypeError, match="bert"):
        load_processor(tmp_path)


def test_unknown_kind_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="qwen2vl"):
        build_tiny_vlm("llava", tmp_path)  # type: ignore[arg-type]


def test_prl_models_tiny_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from services.cli import load_commands
    from services.cli.base import app

    load_commands()
    out = tmp_path / "m"
    res = CliRunner().invoke(app, ["models", "tiny", "--kind", "qwen25vl", "--out", str(out)])
    assert res.exit_code == 0, res.output
    model, proc = load_vlm(out)
    assert type(proc).__name__ == "Qwen2_5_VLImageOnlyProcessor"
    assert model.config.model_type == "qwen2_5_vl"


@pytest.mark.parametrize(
    ("kind", "stock"), [("qwen2vl", "Qwen2VLProcessor"), ("qwen25vl", "Qwen2_5_VLProcessor")]
)
def test_checkpoint_names_the_stock_processor_as_a_real_qwen_vl_does(
    kind: str, stock: str, tmp_path: Path
) -> None:
    """Stock AutoProcessor (TRL's GRPOTrainer(model=PATH), vLLM) must resolve the stock class,
    never a bare tokenizer (TRL then fails with KeyError: 'pixel_values')."""
    import json

    import transformers
    from transformers import AutoProcessor
    from transformers.models.auto.processing_auto import processor_class_from_name

    out = build_tiny_vlm(kind, tmp_path / kind)  # type: ignore[arg-type]
    config = json.loads((out / "processor_config.json").read_text())
    assert config["processor_class"] == stock
    assert processor_class_from_name(stock) is getattr(transformers, stock)
    assert config["video_processor"]["video_processor_type"] == "Qwen2VLVideoProcessor"
    try:
        import torchvision  # noqa: F401
    except Exception:  # CPU torch: the stock video processor cannot be built, as for a real one
        with pytest.raises(ImportError, match="Torchvision"):
            AutoProcessor.from_pretrained(str(out))
    else:
        assert type(AutoProcessor.from_pretrained(str(out))).__name__ == stock
    proc = load_processor(out)  # the project's loader works either way
    proc.save_pretrained(tmp_path / "again")  # as a trainer saves its checkpoint
    again = json.loads((tmp_path / "again" / "processor_config.json").read_text())
    assert again["processor_class"] == stock
    enc = proc(
        text=["<|vision_start|><|image_pad|><|vision_end|>x"], images=[Image.new("RGB", (64, 64))]
    )
    assert "pixel_values" in enc
