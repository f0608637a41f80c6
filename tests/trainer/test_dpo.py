"""PIVOT preference training: pairs from reward-ranked groups, a DPO run on the tiny VLM."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from trainer import dpo, pivot


def test_best_vs_worst_and_conversational_rows():
    img = Image.new("RGB", (64, 64), (1, 2, 3))
    rows = dpo.build_preference_pairs(
        [
            {
                "prompt": "Colour?",
                "completions": ["a", "b", "c"],
                "rewards": [0.2, 0.9, 0.1],
                "images": [img],
            },
            {
                "prompt": [
                    {
                        "role": "user",
                        "content": [{"type": "image"}, {"type": "text", "text": "Box it"}],
                    }
                ],
                "completions": ["x", "y"],
                "rewards": [0.0, 1.0],
            },
        ],
        with_rewards=True,
    )
    assert rows[0]["prompt"] == [{"role": "user", "content": "Colour?"}]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "b"}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": "c"}]
    assert rows[0]["images"] == [img] and (
        rows[0]["chosen_reward"],
        rows[0]["rejected_reward"],
    ) == (0.9, 0.1)
    assert rows[1]["prompt"] == [{"role": "user", "content": "Box it"}]  # image part stripped
    assert "images" not in rows[1]


def test_ties_zero_variance_nan_and_identical_texts_are_skipped():
    groups = [
        {"prompt": "p", "completions": ["a", "b"], "rewards": [0.5, 0.5]},  # zero variance
        {"prompt": "p", "completions": ["a"], "rewards": [1.0]},  # one completion
        {"prompt": "p", "completions": ["a", "b"], "rewards": [1.0, float("nan")]},  # one score
        {"prompt": "p", "completions": ["same", "same"], "rewards": [1.0, 0.0]},  # same text
        {"prompt": "p", "completions": ["a", "b", "c"], "rewards": [float("nan"), 0.3, 0.7]},
    ]
    rows = dpo.build_preference_pairs(groups)
    assert len(rows) == 1
    assert rows[0]["chosen"][0]["content"] == "c" and rows[0]["rejected"][0]["content"] == "b"
    assert dpo.build_preference_pairs(groups, min_margin=0.4) == []


def test_tied_best_takes_first_and_tied_worst_takes_last():
    rows = dpo.build_preference_pairs(
        [{"prompt": "p", "completions": list("abcd"), "rewards": [1, 0, 1, 0]}]
    )
    assert rows[0]["chosen"][0]["content"] == "a" and rows[0]["rejected"][0]["content"] == "d"


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="2 completions but 1 rewards"):
        dpo.build_preference_pairs([{"prompt": "p", "completions": ["a", "b"], "rewards": [1.0]}])


@settings(max_examples=100, deadline=None)
@given(
    groups=st.lists(
        st.lists(st.one_of(st.floats(-5, 5), st.just(float("nan"))), min_size=1, max_size=6),
        min_size=1,
        max_size=6,
    ),
    margin=st.sampled_from([0.0, 0.5]),
)
def test_pairs_are_extremes_with_a_margin(groups, margin):
    data = [
        {"prompt": f"p{g}", "completions": [f"c{g}-{i}" for i in range(len(r))], "rewards": r}
        for g, r in enumerate(groups)
    ]
    rows = dpo.build_preference_pairs(data, min_margin=margin, with_rewards=True)
    expected = 0
    for r in groups:
        scored = [x for x in r if not math.isnan(x)]
        expected += len(scored) >= 2 and max(scored) - min(scored) > margin
    assert len(rows) == expected
    for row in rows:
        g = int(row["prompt"][0]["content"][1:])
        scored = [x for x in groups[g] if not math.isnan(x)]
        assert row["chosen_reward"] == max(scored) and row["rejected_reward"] == min(scored)
        assert row["chosen_reward"] - row["rejected_reward"] > margin


def test_run_dpo_rejects_empty_pairs(tmp_path):
    with pytest.raises(ValueError, match="no preference pairs"):
        dpo.run_dpo(tmp_path, [], tmp_path / "out")


def test_two_dpo_steps_train_the_vision_tower_then_export_loads_back(tiny_qwen2vl, tmp_path):
    from trainer.tiny import load_vlm

    images = [Image.new("RGB", (64, 64), c) for c in ((200, 10, 10), (10, 10, 200))]
    groups = [
        {
            "prompt": "What colour is the image?",
            "completions": ["red", "blue", "green"],
            "rewards": [1, 0, 0.5],
        },
        {"prompt": "Which colour?", "completions": ["blue", "red"], "rewards": [1.0, 0.0]},
        {"prompt": "tie", "completions": ["a", "b"], "rewards": [1.0, 1.0]},
    ]
    for g, img in zip(groups, [images[0], images[1], images[1]], strict=True):
        g["images"] = [img]
    pairs = dpo.build_preference_pairs(groups)
    assert len(pairs) == 2

    base, _ = load_vlm(tiny_qwen2vl)
    base_visual = {k: v.clone() for k, v in pivot.find_visual(base).state_dict().items()}
    base_lm = {k: v.clone() for k, v in base.model.language_model.state_dict().items()}

    out = tmp_path / "dpo"
    cfg = dpo.DPORunConfig(max_steps=2, learning_rate=1e-2, per_device_train_batch_size=2)
    result = dpo.run_dpo(tiny_qwen2vl, pairs, out, cfg)
    assert result["steps"] == 2 and math.isfinite(result["train_loss"])
    assert result["trainable"]["tower_trainable"] == result["trainable"]["tower_total"] > 0

    trained, _ = load_vlm(out)
    tv = pivot.find_visual(trained).state_dict()
    moved = [k for k in base_visual if not torch.equal(base_visual[k], tv[k])]
    assert any(k.startswith("blocks.") for k in moved) and any(
        k.startswith("merger.") for k in moved
    )
    lm = trained.model.language_model.state_dict()
    assert all(torch.equal(base_lm[k], lm[k]) for k in base_lm)  # language model frozen

    enc_dir = pivot.export_vision_encoder(out, tmp_path / "enc")
    encoder, image_processor = pivot.load_vision_encoder(enc_dir)
    got = encoder.state_dict()
    assert all(torch.equal(got[k], tv[k]) for k in tv)
    report = pivot.drift_report(
        tiny_qwen2vl, enc_dir, [*images, Image.new("RGB", (56, 84), (0, 90, 0))]
    )
    assert report["weight_relative_change"] > 0
    assert image_processor is not None


def test_load_rollout_groups_reads_images_relative_to_the_file(tmp_path):
    import json

    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "a.png")
    lines = [
        {
            "id": "g1",
            "prompt": "p",
            "completions": ["x", "y"],
            "rewards": [1.0, 0.0],
            "images": ["a.png"],
        },
        {"prompt": "q", "completions": ["x", "y"], "rewards": [0.5, 0.5]},
    ]
    f = tmp_path / "groups.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    groups = dpo.load_rollout_groups(f)
    assert [g.id for g in groups] == ["g1", None]
    assert groups[0].images[0].getpixel((0, 0)) == (255, 0, 0)
    rows = dpo.build_preference_pairs(groups)
    assert len(rows) == 1 and rows[0]["images"][0].size == (8, 8)
    f.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"groups\.jsonl:1"):
        dpo.load_rollout_groups(f)
