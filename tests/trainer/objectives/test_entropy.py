from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.objectives.entropy import entropy_regularizer

pytestmark = pytest.mark.torch


def test_hand_computed_value_and_gradient() -> None:
    h = torch.tensor([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[0.5, 0.5, 9.0], [1.0, 2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    loss, m = entropy_regularizer(h, ref, mask)
    # row 0: (1.5 − 0.5)² = 1 ; row 1: (4 − 2)² = 4 ; mean 2.5
    assert float(loss) == pytest.approx(2.5)
    assert m["ent/gap_mean"] == pytest.approx(1.5)
    loss.backward()
    # d/dH_{0,t} = 2·1/2 /2 rows = 0.5 on unmasked, 0 on masked; row 1: 2·2/3 /2
    assert h.grad.flatten().tolist() == pytest.approx([0.5, 0.5, 0.0, 2 / 3, 2 / 3, 2 / 3])
    assert ref.grad is None


def test_empty_rows_are_left_out() -> None:
    h = torch.tensor([[1.0, 1.0], [7.0, 7.0]])
    ref = torch.zeros(2, 2)
    loss, _ = entropy_regularizer(h, ref, torch.tensor([[1, 1], [0, 0]]))
    assert float(loss) == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 5), st.floats(0.0, 5.0), st.floats(0.0, 5.0))
def test_only_the_sequence_mean_matters(n: int, pad: int, a: float, b: float) -> None:
    # constant entropies of any length give the same loss: (a − b)²
    h = torch.full((1, n + pad), a, dtype=torch.float64)
    h[:, n:] = 99.0
    ref = torch.full((1, n + pad), b, dtype=torch.float64)
    mask = torch.zeros(1, n + pad)
    mask[:, :n] = 1
    loss, _ = entropy_regularizer(h, ref, mask)
    assert float(loss) == pytest.approx((a - b) ** 2, abs=1e-9)
