"""PIVOT: vision tower / projector switches, encoder export round trip, drift metrics."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from trainer import pivot


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(
        torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    return q


# ----------------------------------------------------------------------------- CKA / cosine


def test_cka_of_identical_features_is_one():
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(0))
    assert pivot.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    scale=st.floats(1e-3, 1e3),
    n=st.integers(3, 12),
    p=st.integers(2, 8),
)
def test_cka_invariant_to_orthogonal_maps_and_isotropic_scaling(seed, scale, n, p):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, generator=g, dtype=torch.float64)
    y = torch.randn(n, p + 1, generator=g, dtype=torch.float64)
    base = pivot.linear_cka(x, y)
    assert 0.0 <= base <= 1.0 + 1e-12
    assert pivot.linear_cka(scale * x @ _orthogonal(p, seed), y) == pytest.approx(base, abs=1e-9)
    assert pivot.linear_cka(x + 3.0, y) == pytest.approx(base, abs=1e-9)  # centring
    assert pivot.linear_cka(x, y) == pytest.approx(pivot.linear_cka(y, x), abs=1e-12)


def test_cka_matches_hand_formula_and_detects_change():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    y = torch.tensor([[1.0], [2.0], [3.0]])
    xc, yc = x - x.mean(0), y - y.mean(0)
    ref = (yc.T @ xc).norm() ** 2 / ((xc.T @ xc).norm() * (yc.T @ yc).norm())
    assert pivot.linear_cka(x, y) == pytest.approx(float(ref))
    assert pivot.linear_cka(x, y) < 0.99
    with pytest.raises(ValueError):
        pivot.linear_cka(x[:1], y[:1])


def test_mean_cosine():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([[2.0, 0.0], [0.0, -1.0]])
    assert pivot.mean_cosine(x, y) == pytest.approx(0.0)
    assert pivot.mean_cosine(x, 5 * x) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- tiny VLMs


@pytest.fixture(scope="module")
def tiny_qwen25vl(tmp_path_factory):
    from trainer.tiny import build_tiny_vlm

    return build_tiny_vlm("qwen25vl", tmp_path_factory.mktemp("tiny-qwen25vl"), seed=1)


@pytest.fixture(params=["qwen2vl", "qwen25vl"])
def ckpt(request, tiny_qwen2vl, tiny_qwen25vl):
    return tiny_qwen2vl if request.param == "qwen2vl" else tiny_qwen25vl


def _probes():
    return [Image.new("RGB", (64, 64), (40 * i, 250 - 30 * i, 17 * i)) for i in range(4)] + [
        Image.new("RGB", (56, 84), (5, 5, 200))
    ]


def test_freeze_switches_tower_and_projector_separately(ckpt):
    from trainer.tiny import load_vlm

    model, _ = load_vlm(ckpt)
    visual = pivot.find_visual(model)
    assert visual is model.model.visual
    parts = pivot.vision_parameters(model)
    assert {id(p) for p in parts["projector"]} == {id(p) for p in visual.merger.parameters()}
    lm_before = [p.requires_grad for p in model.model.language_model.parameters()]

    counts = pivot.set_vision_trainable(model, tower=False, projector=True)
    assert counts.tower_trainable == 0 and counts.projector_trainable == counts.projector_total > 0
    assert all(not p.requires_grad for p in visual.blocks.parameters())
    assert all(p.requires_grad for p in visual.merger.parameters())

    counts = pivot.set_vision_trainable(model, tower=True)  # projector left as it was
    assert counts.tower_trainable == counts.tower_total > 0 and counts.projector_trainable > 0
    counts = pivot.set_vision_trainable(model, projector=False)
    assert counts.projector_trainable == 0 and counts.tower_trainable == counts.tower_total
    assert [p.requires_grad for p in model.model.language_model.parameters()] == lm_before


def test_find_visual_unwraps_peft(tiny_qwen2vl):
    peft = pytest.importorskip("peft")
    from trainer.tiny import load_vlm

    model, _ = load_vlm(tiny_qwen2vl)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert all(not p.requires_grad for p in pivot.vision_parameters(wrapped)["tower"])
    counts = pivot.set_vision_trainable(wrapped, tower=True)
    assert counts.tower_trainable == counts.tower_total


def test_export_round_trip_is_exact(ckpt, tmp_path):
    from trainer.tiny import load_vlm

    out = pivot.export_vision_encoder(ckpt, tmp_path / "enc")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"].endswith("_vision")
    encoder, image_processor = pivot.load_vision_encoder(out)
    model, processor = load_vlm(ckpt)
    ref = pivot.find_visual(model).state_dict()
    got = encoder.state_dict()
    assert set(ref) == set(got) and all(torch.equal(ref[k], got[k]) for k in ref)
    assert image_processor is not None
    feats = pivot.pooled_features(encoder, image_processor, _probes())
    ref_feats = pivot.pooled_features(
        pivot.find_visual(model).eval(), processor.image_processor, _probes()
    )
    assert torch.equal(feats["projector"], ref_feats["projector"]) and torch.equal(
        feats["tower"], ref_feats["tower"]
    )
    assert feats["projector"].shape == (5, model.config.text_config.hidden_size)


def test_drift_report_identity_and_after_perturbation(tiny_qwen2vl, tmp_path):
    same = pivot.drift_report(tiny_qwen2vl, tiny_qwen2vl, _probes())
    assert same["tower"]["linear_cka"] == pytest.approx(1.0, abs=1e-9)
    assert same["projector"]["mean_cosine"] == pytest.approx(1.0, abs=1e-9)
    assert same["weight_relative_change"] == 0.0

    encoder, image_processor = pivot.load_vision_encoder(tiny_qwen2vl)
    with torch.no_grad():
        for p in encoder.blocks.parameters():
            p.add_(0.5 * torch.randn_like(p))
    encoder.save_pretrained(tmp_path / "moved")
    image_processor.save_pretrained(tmp_path / "moved")
    moved = pivot.drift_report(tiny_qwen2vl, tmp_path / "moved", _probes())
    assert moved["weight_relative_change"] > 0.01
    assert moved["tower"]["mean_cosine"] < 1.0 - 1e-6
    assert moved["tower"]["linear_cka"] < 1.0 - 1e-6


def test_cli_export_and_drift(tiny_qwen2vl, tmp_path):
    from typer.testing import CliRunner

    import services.cli.export  # noqa: F401  (registers the command on export_app)
    from services.cli.base import app

    probes = tmp_path / "probes"
    probes.mkdir()
    for i, img in enumerate(_probes()):
        img.save(probes / f"{i}.png")
    out = tmp_path / "enc"
    result = CliRunner().invoke(
        app,
        [
            "export",
            "vision-encoder",
            "--checkpoint",
            str(tiny_qwen2vl),
            "--out",
            str(out),
            "--drift-base",
            str(tiny_qwen2vl),
            "--probe-images",
            str(probes),
        ],
    )
    assert result.exit_code == 0, result.output
    drift = json.loads((out / "drift.json").read_text())
    assert drift["n_images"] == 5 and drift["projector"]["linear_cka"] == pytest.approx(
        1.0, abs=1e-9
    )
    encoder, _ = pivot.load_vision_encoder(out)
    assert type(encoder).__name__ == "Qwen2VisionTransformerPretrainedModel"
