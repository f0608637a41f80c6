"""Attention → DEVA patch mask helper (synthetic attention with a known peak; tiny decoder)."""

from __future__ import annotations

import pytest
import torch

from schemas.reward import PatchMask
from services.embedding.attention import (
    keep_top_fraction,
    patch_scores,
    qwen_patch_grid,
    to_patch_mask,
)


def _attn_with_peak(
    t: int, image_pos: list[int], text_pos: list[int], hot: int, layers: int = 2
) -> list[torch.Tensor]:
    """(1, H, T, T) rows: uniform, except text rows put extra mass on image token ``hot``."""
    out = []
    for _ in range(layers):
        a = torch.full((1, 2, t, t), 1.0 / t)
        for q in text_pos:
            a[0, :, q, image_pos[hot]] += 0.5
            a[0, :, q] /= a[0, :, q].sum()
        out.append(a)
    return out


def test_peak_patch_gets_the_top_score_in_row_major_order() -> None:
    image_pos = list(range(2, 8))  # 6 image tokens → 2×3 grid
    text_pos = [9, 10, 11]
    attn = _attn_with_peak(12, image_pos, text_pos, hot=4)
    s = patch_scores(attn, torch.tensor(image_pos), torch.tensor(text_pos), (2, 3))
    assert s.shape == (2, 3)
    assert s[1, 1] == pytest.approx(1.0)  # token 4 in row-major order = row 1, col 1
    assert s.flatten().tolist().count(0.0) == 5  # the rest share the minimum → 0
    mask = PatchMask(**to_patch_mask(s, threshold=0.5))
    assert mask.threshold == 0.5 and len(mask.grid) == 2


def test_hand_computed_mean_over_layers_heads_and_queries() -> None:
    # T = 4: tokens 0, 1 are image (grid 1×2), tokens 2, 3 text.
    a1 = torch.zeros(1, 1, 4, 4)
    a1[0, 0, 2, :2] = torch.tensor([0.6, 0.2])
    a1[0, 0, 3, :2] = torch.tensor([0.2, 0.2])
    a2 = torch.zeros(1, 1, 4, 4)
    a2[0, 0, 2, :2] = torch.tensor([0.0, 0.4])
    a2[0, 0, 3, :2] = torch.tensor([0.4, 0.4])
    # raw means: patch0 = (0.6+0.2+0+0.4)/4 = 0.3, patch1 = (0.2+0.2+0.4+0.4)/4 = 0.3 → equal → all ones
    s = patch_scores([a1, a2], torch.tensor([0, 1]), torch.tensor([2, 3]), (1, 2))
    assert s.tolist() == [[1.0, 1.0]]
    # layer 0 only: patch0 = 0.4, patch1 = 0.2 → scaled [1, 0]
    s = patch_scores([a1, a2], torch.tensor([0, 1]), torch.tensor([2, 3]), (1, 2), layers=[0])
    assert s.tolist() == [[1.0, 0.0]]


def test_top_fraction() -> None:
    s = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.7, 0.0]])
    assert keep_top_fraction(s, 0.5).tolist() == [[False, True, True], [False, True, False]]
    assert to_patch_mask(s, keep_fraction=1 / 6)["grid"] == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_errors() -> None:
    with pytest.raises(ValueError, match="eager"):
        patch_scores((), torch.tensor([0]), torch.tensor([1]), (1, 1))
    with pytest.raises(ValueError, match="do not fill"):
        patch_scores([torch.zeros(1, 1, 3, 3)], torch.tensor([0]), torch.tensor([1]), (1, 2))
    assert qwen_patch_grid([1, 8, 12]) == (4, 6)
    with pytest.raises(ValueError):
        qwen_patch_grid([2, 8, 12])


def test_eager_decoder_returns_weights_sdpa_does_not() -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1)  # fmt: skip
    torch.manual_seed(0)
    ids = torch.randint(0, 64, (1, 10))
    eager = Qwen2ForCausalLM._from_config(cfg, attn_implementation="eager").eval()
    out = eager(ids, output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (1, 2, 10, 10)
    s = patch_scores(out.attentions, torch.arange(0, 6), torch.arange(6, 10), (2, 3))
    assert s.shape == (2, 3) and not s.requires_grad
    assert float(s.min()) >= 0.0 and float(s.max()) == pytest.approx(1.0)
    sdpa = Qwen2ForCausalLM._from_config(cfg, attn_implementation="sdpa").eval()
    assert not sdpa(ids, output_attentions=True).attentions  # documented: sdpa returns none
