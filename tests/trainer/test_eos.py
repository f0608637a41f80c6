from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.grpo import eos_logps_from_hidden, policy_loss_name

pytestmark = pytest.mark.torch


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.3, 2.0), st.booleans())
def test_eos_logp_from_hidden_equals_full_softmax(
    seed: int, temperature: float, with_bias: bool
) -> None:
    g = torch.Generator().manual_seed(seed)
    b, t, h, v, eos = 2, 5, 8, 11, 7
    hidden = torch.randn(b, t, h, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(v, h, generator=g, dtype=torch.float64)
    bias = torch.randn(v, generator=g, dtype=torch.float64) if with_bias else None
    labels = torch.randint(0, v, (b, t), generator=g)
    logits = hidden @ weight.T + (0 if bias is None else bias)
    logp = torch.log_softmax(logits / temperature, -1)
    label_logps = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    got = eos_logps_from_hidden(hidden, labels, label_logps, weight, bias, eos, temperature)
    assert torch.allclose(got, logp[..., eos], atol=1e-10)
    # gradients agree with the direct computation too
    (g1,) = torch.autograd.grad(got.sum(), hidden, retain_graph=True)
    (g2,) = torch.autograd.grad(logp[..., eos].sum(), hidden)
    assert torch.allclose(g1, g2, atol=1e-10)


def test_policy_loss_names_map_trl_settings() -> None:
    assert policy_loss_name("dapo", "token") == "dapo"
    assert policy_loss_name("grpo", "sequence") == "gspo"
    with pytest.raises(ValueError, match="GSPO"):
        policy_loss_name("bnpo", "sequence")
    with pytest.raises(ValueError, match="cispo"):
        policy_loss_name("cispo", "token")
