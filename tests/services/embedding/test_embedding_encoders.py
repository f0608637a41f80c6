"""Encoders: device choice, offline tiny CLIP/SigLIP through the real loading path, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from services.embedding.encoders import DevicePlan, Encoder, choose_device


@pytest.mark.parametrize(
    ("device", "dtype", "cuda", "bf16", "expected"),
    [
        ("auto", "auto", False, False, DevicePlan("cpu", "float32")),
        ("auto", "auto", True, True, DevicePlan("cuda", "bfloat16")),
        ("auto", "auto", True, False, DevicePlan("cuda", "float16")),
        ("cpu", "auto", True, True, DevicePlan("cpu", "float32")),
        ("cuda", "float32", True, True, DevicePlan("cuda", "float32")),
        ("auto", "bfloat16", False, False, DevicePlan("cpu", "bfloat16")),
    ],
)
def test_choose_device(device, dtype, cuda, bf16, expected) -> None:
    assert choose_device(device, dtype, cuda_available=cuda, bf16_supported=bf16) == expected


def test_cuda_requested_without_gpu_raises() -> None:
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        choose_device("cuda", "auto", cuda_available=False, bf16_supported=False)


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    sizes = [(40, 30), (64, 64), (20, 50), (33, 33), (80, 20)]
    return [
        Image.fromarray(rng.integers(0, 255, (sizes[i % 5][1], sizes[i % 5][0], 3), dtype=np.uint8))
        for i in range(n)
    ]


TEXTS = ["a cat", "the red car on the left of the picture", "x", "Ünïcödé text ✓", ""]


@pytest.mark.parametrize("name", ["clip_encoder", "siglip_encoder"])
def test_loaded_through_auto_classes_and_unit_norm(
    name: str, request: pytest.FixtureRequest
) -> None:
    enc: Encoder = request.getfixturevalue(name)
    assert enc.plan == DevicePlan("cpu", "float32")
    assert (
        type(enc.model).__name__
        == {"clip_encoder": "CLIPModel", "siglip_encoder": "SiglipModel"}[name]
    )
    img = enc.encode_images(_images(3))
    txt = enc.encode_texts(TEXTS)
    assert img.shape == (3, enc.dim) and txt.shape == (len(TEXTS), enc.dim)
    assert img.dtype == np.float32
    assert np.allclose(np.linalg.norm(img, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(txt, axis=1), 1, atol=1e-5)
    assert len({tuple(np.round(v, 5)) for v in txt}) == len(
        TEXTS
    )  # distinct texts, distinct vectors


@pytest.mark.parametrize("name", ["clip_encoder", "siglip_encoder"])
def test_batched_equals_one_by_one(name: str, request: pytest.FixtureRequest) -> None:
    enc: Encoder = request.getfixturevalue(name)
    imgs = _images(5)
    batched = enc.encode_images(imgs)
    single = np.concatenate([enc.encode_images([im]) for im in imgs])
    assert np.allclose(batched, single, atol=1e-5)
    batched = enc.encode_texts(TEXTS)
    single = np.concatenate([enc.encode_texts([t]) for t in TEXTS])
    assert np.allclose(batched, single, atol=1e-5)


def test_siglip_pads_to_max_length(siglip_encoder: Encoder) -> None:
    toks = siglip_encoder.tokenize(["a", "a much longer text"])
    assert set(toks) == {"input_ids"}
    assert toks["input_ids"].shape[1] == siglip_encoder.max_text_len


def test_seed_changes_weights_and_same_seed_reproduces(tmp_path: Path) -> None:
    from services.embedding.tiny import build_tiny_encoder

    a = Encoder.load(build_tiny_encoder("clip", tmp_path / "a", seed=1)).encode_texts(["hi"])
    b = Encoder.load(build_tiny_encoder("clip", tmp_path / "b", seed=1)).encode_texts(["hi"])
    c = Encoder.load(build_tiny_encoder("clip", tmp_path / "c", seed=2)).encode_texts(["hi"])
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_prl_models_tiny_cli(tmp_path: Path) -> None:
    import services.cli.models  # noqa: F401
    from services.cli import app, main  # noqa: F401  (main imports every command module)

    res = CliRunner().invoke(
        app, ["models", "tiny", "--kind", "siglip", "--out", str(tmp_path / "s")]
    )
    assert res.exit_code == 0, res.output
    enc = Encoder.load(tmp_path / "s")
    assert enc.family == "siglip" and enc.encode_texts(["ok"]).shape == (1, enc.dim)
    with pytest.raises(ValueError, match="unknown encoder kind"):
        from services.embedding.tiny import build_tiny_encoder

        build_tiny_encoder("bert", tmp_path / "b")  # type: ignore[arg-type]
