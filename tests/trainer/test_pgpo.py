"""PGPO: visual dependency (KL with vs without image) and mass-conserving token weights."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer import pgpo

# ----------------------------------------------------------------------------- visual_dependency


def test_visual_dependency_matches_bruteforce_kl():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 7, generator=g) * 3, torch.randn(2, 3, 7, generator=g)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    d = pgpo.visual_dependency(a, b, mask)
    for i in range(2):
        for t in range(3):
            p = torch.softmax(a[i, t].double(), -1)
            q = torch.softmax(b[i, t].double(), -1)
            kl = float((p * (p / q).log()).sum()) if mask[i, t] else 0.0
            assert d[i, t].item() == pytest.approx(kl, rel=1e-5, abs=1e-7)


def test_visual_dependency_zero_for_identical_and_shift_invariant():
    x = torch.randn(2, 4, 11)
    mask = torch.ones(2, 4)
    assert torch.allclose(pgpo.visual_dependency(x, x + 5.0, mask), torch.zeros(2, 4), atol=1e-6)


def test_visual_dependency_stable_for_huge_logits_and_uses_temperature():
    a = torch.tensor([[[1000.0, 0.0, -1000.0]]])
    b = torch.tensor([[[0.0, 1000.0, -1000.0]]])
    d = pgpo.visual_dependency(a, b, torch.ones(1, 1))
    assert torch.isfinite(d).all() and d.item() == pytest.approx(1000.0, rel=1e-4)
    d2 = pgpo.visual_dependency(a, b, torch.ones(1, 1), temperature=2.0)
    assert d2.item() == pytest.approx(500.0, rel=1e-4)


def test_visual_dependency_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        pgpo.visual_dependency(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), torch.ones(1, 2))


# ----------------------------------------------------------------------------- token weights

dep_rows = st.lists(st.floats(0.0, 50.0, allow_nan=False), min_size=1, max_size=12)


@st.composite
def dep_batches(draw):
    rows = draw(st.lists(dep_rows, min_size=1, max_size=4))
    width = max(len(r) for r in rows)
    d = torch.zeros(len(rows), width, dtype=torch.float64)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        d[i, : len(r)] = torch.tensor(r, dtype=torch.float64)
        mask[i, : len(r)] = True
    # scramble which positions are valid, keeping the counts
    perm = torch.randperm(width, generator=torch.Generator().manual_seed(draw(st.integers(0, 99))))
    return d[:, perm], mask[:, perm]


@settings(max_examples=150, deadline=None)
@given(
    batch=dep_batches(),
    mode=st.sampled_from(["absolute", "quantile"]),
    thr=st.floats(0.0, 1.0),
    strength=st.floats(0.0, 10.0),
    w_min=st.floats(0.0, 1.0),
    w_max=st.floats(1.0, 6.0),
)
def test_weights_conserve_mass_and_respect_bounds(batch, mode, thr, strength, w_min, w_max):
    d, mask = batch
    w, stats = pgpo.pgpo_token_weights(
        d, mask, threshold=thr, threshold_mode=mode, strength=strength, w_min=w_min, w_max=w_max
    )
    n = mask.sum(dim=1).double()
    assert torch.allclose(w.sum(dim=1), n, atol=1e-6 * max(1.0, float(n.max())))
    assert (w[~mask] == 0).all()
    assert (w[mask] >= w_min - 1e-9).all() and (w[mask] <= w_max + 1e-9).all()
    assert 0.0 <= stats.gated_share <= 1.0


@settings(max_examples=60, deadline=None)
@given(
    value=st.floats(0.0, 20.0),
    n=st.integers(1, 10),
    mode=st.sampled_from(["absolute", "quantile"]),
    thr=st.floats(0.0, 1.0),
)
def test_uniform_dependency_gives_unit_weights(value, n, mode, thr):
    d = torch.full((1, n), value, dtype=torch.float64)
    w, _ = pgpo.pgpo_token_weights(
        d, torch.ones(1, n), threshold=thr, threshold_mode=mode, strength=3.0
    )
    assert torch.allclose(w, torch.ones_like(w), atol=1e-9)


def test_gating_hand_computed():
    # d̄ = 1, r = d; gated (d > 0.5): u = 1 + 1·r = [1, 1, 3, 3]; mass 8 → s = 4/8, no clip.
    d = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    w, stats = pgpo.pgpo_token_weights(
        d, torch.ones(1, 4), threshold=0.5, strength=1.0, w_min=0.0, w_max=10.0
    )
    assert torch.allclose(w, torch.tensor([[0.5, 0.5, 1.5, 1.5]], dtype=torch.float64))
    assert stats.gated_share == pytest.approx(0.5)
    assert stats.mean_dependency == pytest.approx(1.0)
    assert stats.mean_gated_weight == pytest.approx(1.5)


def test_amplification_is_proportional_to_dependency():
    d = torch.tensor([[0.1, 1.0, 2.0, 3.0]], dtype=torch.float64)
    w, _ = pgpo.pgpo_token_weights(
        d, torch.ones(1, 4), threshold=0.5, strength=2.0, w_min=0.0, w_max=100.0
    )
    # gated tokens: w ∝ 1 + 2 d / d̄ ; un-gated: w ∝ 1 (same scale s)
    d_bar = d.mean()
    s = w[0, 0]
    assert torch.allclose(w[0, 1:], s * (1 + 2 * d[0, 1:] / d_bar))
    assert s < 1 and w[0, 3] > 1 and (w[0, 1:].diff() > 0).all()


def test_no_gated_token_and_zero_strength_give_plain_grpo():
    d = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    w, stats = pgpo.pgpo_token_weights(d, torch.ones(1, 3), threshold=5.0, strength=2.0)
    assert torch.allclose(w, torch.ones_like(w)) and stats.gated_share == 0.0
    w0, _ = pgpo.pgpo_token_weights(d, torch.ones(1, 3), threshold=0.0, strength=0.0)
    assert torch.allclose(w0, torch.ones_like(w0))


def test_quantile_threshold_is_per_sequence():
    d = torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]], dtype=torch.float64)
    w, stats = pgpo.pgpo_token_weights(
        d, torch.ones(2, 4), threshold=0.5, threshold_mode="quantile", w_max=50
    )
    # median of each row is 2.5 / 25: the top two of each row are gated; rows are scale copies
    assert stats.gated_share == pytest.approx(0.5)
    assert torch.allclose(w[0], w[1], atol=1e-6)
    tau = pgpo.dependency_threshold(d, torch.ones(2, 4), 0.5, "quantile")
    assert torch.allclose(tau, torch.tensor([2.5, 25.0], dtype=torch.float64))


def test_masked_positions_do_not_influence_weights():
    d = torch.tensor([[0.0, 2.0, 99.0, 2.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0, 1, 1]], dtype=torch.bool)
    w, _ = pgpo.pgpo_token_weights(d, mask, threshold=0.5, threshold_mode="absolute", w_max=10)
    w_ref, _ = pgpo.pgpo_token_weights(
        d[:, [0, 1, 3, 4]], torch.ones(1, 4), threshold=0.5, w_max=10
    )
    assert w[0, 2] == 0
    assert torch.allclose(w[0, [0, 1, 3, 4]], w_ref[0])
    empty, stats = pgpo.pgpo_token_weights(d, torch.zeros_like(mask), threshold=0.5)
    assert (empty == 0).all() and stats.gated_share == 0.0


def test_clipping_and_renormalisation_are_solved_jointly():
    # one dominant token: clip-then-rescale would push it past w_max or break the mass.
    d = torch.tensor([[0.0, 0.0, 0.0, 100.0]], dtype=torch.float64)
    w, stats = pgpo.pgpo_token_weights(
        d, torch.ones(1, 4), threshold=0.5, strength=5.0, w_min=0.2, w_max=2.0
    )
    assert w[0, 3].item() == pytest.approx(2.0)  # saturated at w_max
    assert torch.allclose(
        w[0, :3], torch.full((3,), 2.0 / 3.0, dtype=torch.float64)
    )  # excess spread evenly
    assert w.sum().item() == pytest.approx(4.0)
    assert stats.clipped_share == pytest.approx(0.25)
    # tight bounds collapse the weights to 1
    w1, _ = pgpo.pgpo_token_weights(
        d, torch.ones(1, 4), threshold=0.5, strength=5.0, w_min=1.0, w_max=1.0
    )
    assert torch.allclose(w1, torch.ones(1, 4, dtype=torch.float64))
    # a lower bound lifts the damped tokens and takes mass from the amplified ones
    w2, _ = pgpo.pgpo_token_weights(
        d, torch.ones(1, 4), threshold=0.5, strength=5.0, w_min=0.9, w_max=10.0
    )
    assert torch.allclose(w2[0, :3], torch.full((3,), 0.9, dtype=torch.float64))
    assert w2[0, 3].item() == pytest.approx(4.0 - 2.7)


def test_invalid_parameters_raise():
    d, m = torch.ones(1, 2), torch.ones(1, 2)
    with pytest.raises(ValueError, match="w_min"):
        pgpo.pgpo_token_weights(d, m, threshold=0.1, w_min=1.2, w_max=2.0)
    with pytest.raises(ValueError, match="quantile"):
        pgpo.pgpo_token_weights(d, m, threshold=1.5, threshold_mode="quantile")
    with pytest.raises(ValueError, match="threshold_mode"):
        pgpo.pgpo_token_weights(d, m, threshold=0.1, threshold_mode="top")  # type: ignore[arg-type]


def test_stats_metrics_have_prefix():
    _, stats = pgpo.pgpo_token_weights(torch.tensor([[0.0, 1.0]]), torch.ones(1, 2), threshold=0.5)
    metrics = stats.as_metrics()
    assert set(metrics) >= {"pgpo/mean_dependency", "pgpo/gated_share"}
    assert not math.isnan(metrics["pgpo/mean_gated_weight"])


# ----------------------------------------------------------------------------- text-only inputs


def test_strip_images_keeps_text_and_leaves_input_untouched():
    conv = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "image", "image": None}, {"type": "text", "text": "Hi"}],
        },
    ]
    out = pgpo.strip_images(conv)
    assert out[0]["content"] == "Be brief."
    assert out[1]["content"] == [{"type": "text", "text": "Hi"}]
    assert len(conv[1]["content"]) == 2


def test_build_text_only_inputs_left_pads_and_counts_positions():
    comp = torch.tensor([[7, 8], [9, 10]])
    out = pgpo.build_text_only_inputs(
        [[1, 2, 3], [4]], comp, torch.tensor([[1, 1], [1, 0]]), pad_token_id=0
    )
    assert out["input_ids"].tolist() == [[1, 2, 3, 7, 8], [0, 0, 4, 9, 10]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert out["position_ids"].shape == (3, 2, 5)
    assert out["position_ids"][0].tolist() == [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]]
    assert torch.equal(out["position_ids"][0], out["position_ids"][2])


def test_drop_vision_tokens_respects_mask():
    ids = torch.tensor([[0, 0, 5, 90, 91, 91, 92, 6], [5, 90, 91, 92, 6, 7, 8, 9]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1] * 8])
    assert pgpo.drop_vision_tokens(ids, mask, [90, 91, 92]) == [[5, 6], [5, 6, 7, 8, 9]]


# ----------------------------------------------------------------------------- tiny Qwen2-VL


@pytest.fixture(scope="module")
def qwen(tiny_qwen2vl):
    from trainer.tiny import load_vlm

    model, proc = load_vlm(tiny_qwen2vl)
    return model.eval(), proc


def _prompts():
    from PIL import Image

    a = Image.new("RGB", (64, 64), (200, 10, 10))
    b = Image.new("RGB", (56, 84), (10, 200, 10))
    return [
        [
            {
                "role": "user",
                "content": [{"type": "image", "image": a}, {"type": "text", "text": "Colour?"}],
            }
        ],
        [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [{"type": "image", "image": b}, {"type": "text", "text": "Box it"}],
            },
        ],
    ]


def _trl_like_batch(proc, prompts, t=6, seed=0):
    """Left-padded batch laid out like TRL's generation output (one image per prompt)."""
    rows = [
        proc.apply_chat_template(
            conversation=[p],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        for p in prompts
    ]
    width = max(r["input_ids"].shape[1] for r in rows)
    pad = proc.tokenizer.pad_token_id

    def left(x, v):
        return torch.cat([torch.full((1, width - x.shape[1]), v, dtype=x.dtype), x], 1)

    comp = torch.randint(0, 250, (len(rows), t), generator=torch.Generator().manual_seed(seed))
    cmask = torch.ones(len(rows), t, dtype=torch.long)
    cmask[-1, t - 2 :] = 0
    mm = [
        torch.cat([left(r["mm_token_type_ids"], 0), torch.zeros(1, t, dtype=torch.long)], 1)
        for r in rows
    ]
    return {
        "prompt_ids": torch.cat([left(r["input_ids"], pad) for r in rows]),
        "prompt_mask": torch.cat([left(r["attention_mask"], 0) for r in rows]),
        "completion_ids": comp,
        "completion_mask": cmask,
        "pixel_values": torch.cat([r["pixel_values"] for r in rows]),
        "image_grid_thw": torch.cat([r["image_grid_thw"] for r in rows]),
        "num_images": [1] * len(rows),
        "mm_token_type_ids": torch.cat(mm),
    }, rows


def test_processor_rebuild_equals_token_drop(qwen):
    _, proc = qwen
    prompts = _prompts()
    batch, _ = _trl_like_batch(proc, prompts)
    dropped = pgpo.drop_vision_tokens(
        batch["prompt_ids"], batch["prompt_mask"], pgpo.vision_token_ids(proc.tokenizer)
    )
    rebuilt = pgpo.text_only_prompt_ids(proc, prompts)
    assert dropped == rebuilt
    image_pad = proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert all(image_pad not in row for row in rebuilt)
    assert "Box it" in proc.tokenizer.decode(rebuilt[1])


def test_text_only_forward_positions_match_an_unpadded_prompt(qwen):
    model, proc = qwen
    batch, _ = _trl_like_batch(proc, _prompts())
    pad = proc.tokenizer.pad_token_id
    prompts = pgpo.text_only_prompt_ids(proc, _prompts())
    t = batch["completion_ids"].shape[1]
    padded = pgpo.build_text_only_inputs(
        prompts, batch["completion_ids"], batch["completion_mask"], pad
    )
    logits = pgpo.completion_logits(model, t, **padded)
    for i, row in enumerate(prompts):  # the same prompt alone: no padding, default positions
        alone = torch.cat([torch.tensor([row]), batch["completion_ids"][i : i + 1]], 1)
        ref = pgpo.completion_logits(model, t, input_ids=alone)
        assert torch.allclose(logits[i : i + 1], ref, atol=1e-5)
    # Masking the image tokens out of the with-image sequence instead keeps the image's M-RoPE
    # positions: the distributions differ, which is why the prompt is rebuilt.
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    vis = torch.isin(ids, torch.tensor(pgpo.vision_token_ids(proc.tokenizer)))
    full = torch.cat([batch["prompt_mask"], torch.ones_like(batch["completion_mask"])], 1)
    pos, _ = model.model.get_rope_index(
        ids,
        mm_token_type_ids=batch["mm_token_type_ids"],
        image_grid_thw=batch["image_grid_thw"],
        attention_mask=full,
    )
    masked = pgpo.completion_logits(
        model, t, input_ids=ids, attention_mask=full * ~vis, position_ids=pos
    )
    assert (masked - logits).abs().max() > 1e-4


def test_batch_visual_dependency_on_tiny_qwen2vl(qwen):
    model, proc = qwen
    batch, rows = _trl_like_batch(proc, _prompts())
    pad = proc.tokenizer.pad_token_id
    text_only = pgpo.text_only_prompt_ids(proc, _prompts())
    d = pgpo.batch_visual_dependency(model, batch, text_only, pad)
    d1 = pgpo.batch_visual_dependency(model, batch, text_only, pad, chunk_size=1)
    assert d.shape == batch["completion_ids"].shape
    assert torch.allclose(d, d1, atol=1e-6)
    assert (d[batch["completion_mask"] == 0] == 0).all()
    assert (d[batch["completion_mask"] == 1] > 0).all()
    # cross-check row 0 against an unbatched forward with the image
    t = batch["completion_ids"].shape[1]
    r = rows[0]
    li = pgpo.completion_logits(
        model,
        t,
        input_ids=torch.cat([r["input_ids"], batch["completion_ids"][:1]], 1),
        pixel_values=r["pixel_values"],
        image_grid_thw=r["image_grid_thw"],
        mm_token_type_ids=torch.cat(
            [r["mm_token_type_ids"], torch.zeros(1, t, dtype=torch.long)], 1
        ),
    )
    alone = torch.cat([torch.tensor([text_only[0]]), batch["completion_ids"][:1]], 1)
    lt = pgpo.completion_logits(model, t, input_ids=alone)
    ref = pgpo.visual_dependency(li, lt, batch["completion_mask"][:1])
    assert torch.allclose(d[:1], ref, rtol=1e-2, atol=2e-6)  # float32 KL of near-equal laws
    # same-image-removed model input (no image at all) ⇒ zero dependency
    no_img = {
        k: v
        for k, v in batch.items()
        if k not in ("pixel_values", "image_grid_thw", "mm_token_type_ids")
    }
    no_img["prompt_ids"], no_img["prompt_mask"] = _left_pad(text_only, pad)
    d0 = pgpo.batch_visual_dependency(model, no_img, text_only, pad)
    assert torch.allclose(d0, torch.zeros_like(d0), atol=1e-6)


def _left_pad(rows, pad):
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def test_pgpo_advantages_inside_a_grpo_trainer(tiny_qwen2vl, tmp_path):
    """The wiring the trainer uses: token-level advantages from the generation batch."""
    from datasets import Dataset
    from PIL import Image
    from trl import GRPOTrainer

    from tests.trainer.helpers import grpo_args
    from trainer.tiny import load_processor

    cfg = pgpo.PGPOConfig(enabled=True, threshold=0.5, threshold_mode="quantile", strength=1.0)
    captured: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    class PGPOTrainer(GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            tok = self.processing_class.tokenizer
            adv, stats = pgpo.pgpo_advantages(
                self.model,
                out,
                pad_token_id=tok.pad_token_id,
                vision_ids=pgpo.vision_token_ids(tok),
                config=cfg,
                temperature=self.temperature,
            )
            captured.append((out["advantages"].clone(), adv, out["completion_mask"]))
            for k, v in stats.as_metrics().items():
                self._metrics["train"][k].append(v)
            out["advantages"] = adv
            return out

    ds = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": "Colour?"}],
                "image": Image.new("RGB", (64, 64), (50 * i, 9, 9)),
            }
            for i in range(4)
        ]
    )

    def reward(prompts, completions, **kwargs):
        return [float(len(c[0]["content"])) for c in completions]

    args = grpo_args(tmp_path, max_steps=2, learning_rate=1e-6)  # TRL default lr
    trainer = PGPOTrainer(
        model=str(tiny_qwen2vl),
        reward_funcs=[reward],
        args=args,
        train_dataset=ds,
        processing_class=load_processor(tiny_qwen2vl),
    )
    trainer.train()
    assert len(captured) == 2
    for a, adv, mask in captured:
        assert adv.shape == mask.shape
        w = adv / a.unsqueeze(1).where(a.unsqueeze(1) != 0, torch.ones(()))
        valid = mask.bool() & (a.unsqueeze(1) != 0)
        per_seq = (w * valid).sum(1)[valid.any(1)]
        assert torch.allclose(per_seq, mask.sum(1)[valid.any(1)].to(per_seq.dtype), rtol=1e-4)
    logged = [h for h in trainer.state.log_history if "pgpo/gated_share" in h]
    assert logged and all(0.0 <= h["pgpo/gated_share"] <= 1.0 for h in logged)
    assert all(h["pgpo/mean_dependency"] > 0 for h in logged)
