"""GRPO-CARE's consistency bonus by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.objectives import reward_bonuses
from trainer.objectives.care import answer_confidence

pytestmark = pytest.mark.torch


def test_bonus_by_hand() -> None:
    # group 0: mean a = 0.5; accurate = {0 (0.9), 1 (0.6)}; mean c over them = 0.6
    #   row 0: c 0.7 ≥ 0.59 -> bonus 0.5·0.9; row 1: c 0.5 < 0.59 -> none; rows 2, 3 inaccurate
    # group 1: all a = 0.05 ≤ τ_acc -> no bonus anywhere
    a = torch.tensor([0.9, 0.6, 0.4, 0.1, 0.05, 0.05, 0.05, 0.05])
    c = torch.tensor([0.7, 0.5, 0.99, 0.99, 0.9, 0.9, 0.9, 0.9])
    b, m = reward_bonuses.get("care_consistency")(a, c, 4, bonus=0.5, margin=0.01)
    assert b.tolist() == pytest.approx([0.45, 0, 0, 0, 0, 0, 0, 0])
    assert m["care/bonus_share"] == pytest.approx(1 / 8)
    assert m["care/accurate_share"] == pytest.approx(2 / 8)
    with pytest.raises(ValueError, match="multiple of group_size"):
        reward_bonuses.get("care_consistency")(a[:6], c[:6], 4)


def test_margin_admits_near_mean_answers() -> None:
    a = torch.tensor([1.0, 1.0])
    c = torch.tensor([0.60, 0.55])  # mean 0.575: 0.55 passes with δ = 0.05, not with 0.01
    fn = reward_bonuses.get("care_consistency")
    assert fn(a, c, 2, margin=0.05)[0].tolist() == [0.5, 0.5]
    assert fn(a, c, 2, margin=0.01)[0].tolist() == [0.5, 0.0]


def test_answer_confidence_is_the_geometric_mean_probability() -> None:
    lp = torch.log(torch.tensor([[0.5, 0.2, 0.8, 0.1], [0.3, 0.3, 0.3, 0.3]]))
    ans = torch.tensor([[False, True, True, False], [False] * 4])
    c = answer_confidence(lp, ans)
    assert c.tolist() == pytest.approx([math.sqrt(0.2 * 0.8), 0.0])
    assert answer_confidence(lp, ans, cap=0.3).tolist() == pytest.approx([0.3, 0.0])
