from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.objectives.diversity import diversity_loss, reference_log_reward, transition_mask

pytestmark = pytest.mark.torch

L = math.log


def _three_token_case() -> dict[str, torch.Tensor]:
    t = lambda *p: torch.tensor([[L(x) for x in p]], dtype=torch.float64)  # noqa: E731
    return {
        "logps": t(0.5, 0.25, 0.8).requires_grad_(),
        "eos_logps": t(0.1, 0.2, 0.4).requires_grad_(),
        "ref_logps": t(0.4, 0.3, 0.9).requires_grad_(),
        "ref_eos_logps": t(0.2, 0.5, 0.6).requires_grad_(),
        "mask": torch.ones(1, 3),
    }


def test_three_tokens_hand_computed_value_and_gradients() -> None:
    case = _three_token_case()
    loss, metrics = diversity_loss(**case, gamma=0.5)
    # log r_1 = ln .4 + .2^(1/.5) ; δ_1 = log r_1 + ln .1 − ln .5 − ln .2 = ln .4 + .04
    d1 = L(0.4) + 0.04
    # log r_2 = ln .3 + .5^2 ;       δ_2 = log r_2 + ln .2 − ln .25 − ln .4 = ln .6 + .25
    d2 = L(0.6) + 0.25
    # the last token (t = 3) closes no transition
    assert float(loss.detach()) == pytest.approx((d1**2 + d2**2) / 2, rel=1e-12)
    assert metrics["div/loss"] == pytest.approx((d1**2 + d2**2) / 2)
    loss.backward()
    g_lp, g_eos = case["logps"].grad[0], case["eos_logps"].grad[0]
    assert g_lp.tolist() == pytest.approx([-d1, -d2, 0.0])
    assert g_eos.tolist() == pytest.approx([d1, -d1 + d2, -d2])
    assert case["ref_logps"].grad is None and case["ref_eos_logps"].grad is None


def test_reference_reward_formula_and_gamma_range() -> None:
    r = reference_log_reward(torch.tensor([L(0.3)]), torch.tensor([L(0.5)]), gamma=1.0)
    assert float(r) == pytest.approx(L(0.3) + 0.5)
    with pytest.raises(ValueError, match="gamma"):
        reference_log_reward(torch.zeros(1), torch.zeros(1), gamma=0.0)
    with pytest.raises(ValueError, match="gamma"):
        reference_log_reward(torch.zeros(1), torch.zeros(1), gamma=1.5)


def test_transition_mask_needs_both_tokens() -> None:
    m = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]])
    assert transition_mask(m).tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]


def _rand(b: int, t: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    neg = lambda: -torch.rand(b, t, generator=g, dtype=torch.float64) * 3  # noqa: E731
    return {"logps": neg(), "eos_logps": neg(), "ref_logps": neg(), "ref_eos_logps": neg()}


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(0, 4), st.integers(0, 10_000))
def test_padding_is_ignored(n: int, pad: int, seed: int) -> None:
    x = _rand(1, n + pad, seed)
    mask = torch.zeros(1, n + pad)
    mask[:, :n] = 1
    padded, _ = diversity_loss(**x, mask=mask)
    trimmed, _ = diversity_loss(**{k: v[:, :n] for k, v in x.items()}, mask=torch.ones(1, n))
    assert float(padded) == pytest.approx(float(trimmed), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 5), st.integers(2, 9), st.integers(0, 10_000))
def test_each_completion_weighs_the_same_whatever_its_length(n1: int, n2: int, seed: int) -> None:
    t = max(n1, n2)
    x = _rand(2, t, seed)
    mask = torch.zeros(2, t)
    mask[0, :n1], mask[1, :n2] = 1, 1
    both, _ = diversity_loss(**x, mask=mask)
    one, _ = diversity_loss(**{k: v[:1] for k, v in x.items()}, mask=mask[:1])
    two, _ = diversity_loss(**{k: v[1:] for k, v in x.items()}, mask=mask[1:])
    assert float(both) == pytest.approx((float(one) + float(two)) / 2, rel=1e-12)


def test_perfect_balance_gives_zero_and_single_token_rows_are_skipped() -> None:
    # choose policy terms that satisfy MDB exactly: log π(o_t) = log r_t + eos_t − eos_{t+1}
    x = _rand(1, 4, 1)
    log_r = reference_log_reward(x["ref_logps"], x["ref_eos_logps"], 0.7)
    x["logps"][:, :-1] = log_r[:, :-1] + x["eos_logps"][:, :-1] - x["eos_logps"][:, 1:]
    loss, _ = diversity_loss(**x, mask=torch.ones(1, 4), gamma=0.7)
    assert float(loss) == pytest.approx(0.0, abs=1e-12)
    lone = {k: v.clone().requires_grad_() for k, v in _rand(1, 3, 2).items()}
    mask = torch.tensor([[1.0, 0.0, 0.0]])
    zero, _ = diversity_loss(**lone, mask=mask)
    assert float(zero) == 0.0
    zero.backward()  # still differentiable
    assert float(lone["logps"].grad.abs().sum()) == 0.0


def _two_completions() -> dict[str, torch.Tensor]:
    """Completion 0 has 3 tokens (2 transitions), completion 1 has 2 tokens (1 transition)."""
    t = lambda *rows: torch.tensor([[L(x) for x in r] for r in rows], dtype=torch.float64)  # noqa: E731
    return {
        "logps": t((0.5, 0.25, 0.8), (0.6, 0.7, 0.9)),
        "eos_logps": t((0.1, 0.2, 0.4), (0.3, 0.5, 0.9)),
        "ref_logps": t((0.4, 0.3, 0.9), (0.5, 0.2, 0.9)),
        "ref_eos_logps": t((0.2, 0.5, 0.6), (0.4, 0.1, 0.9)),
        "mask": torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]),
    }


def _hand_residuals(state_reward: str) -> list[list[float]]:
    """δ by hand, γ = 1: log r_t = ln π_ref(o_t) + π_ref(⊤ | o_<t)."""
    lr = [[L(0.4) + 0.2, L(0.3) + 0.5], [L(0.5) + 0.4]]  # log r per transition column
    if state_reward == "last_token":  # Δ log R_t = log r_t − log r_{t−1}, log r_0 = 0
        lr = [[lr[0][0], lr[0][1] - lr[0][0]], [lr[1][0]]]
    # δ_t = Δ log R_t + ln π(⊤|o_<t) − ln π(o_t|o_<t) − ln π(⊤|o_≤t)
    return [
        [lr[0][0] + L(0.1) - L(0.5) - L(0.2), lr[0][1] + L(0.2) - L(0.25) - L(0.4)],
        [lr[1][0] + L(0.3) - L(0.6) - L(0.5)],
    ]


@pytest.mark.parametrize("state_reward", ["cumulative", "last_token"])
@pytest.mark.parametrize("prompt_transition", [True, False])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_reductions_and_switches_hand_computed(
    reduction: str, prompt_transition: bool, state_reward: str
) -> None:
    d = _hand_residuals(state_reward)
    if not prompt_transition:  # drop column 0: completion 1 is left without a transition
        d = [d[0][1:], []]
    per = [sum(x * x for x in row) / (len(row) if reduction == "mean" else 1) for row in d if row]
    loss, metrics = diversity_loss(
        **_two_completions(),
        gamma=1.0,
        reduction=reduction,
        state_reward=state_reward,
        prompt_transition=prompt_transition,
    )
    assert float(loss) == pytest.approx(sum(per) / len(per), rel=1e-12)
    assert metrics["div/loss"] == pytest.approx(sum(per) / len(per))


def test_sum_is_mean_times_the_transition_count() -> None:
    x = _rand(3, 9, seed=4)
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] * 2 + [0] * 7], dtype=torch.float64)
    for i, n in enumerate((8, 4, 1)):  # |V_i| = tokens − 1
        one = {k: v[i : i + 1] for k, v in x.items()}
        s, _ = diversity_loss(**one, mask=mask[i : i + 1], reduction="sum")
        m, _ = diversity_loss(**one, mask=mask[i : i + 1], reduction="mean")
        assert float(s) == pytest.approx(n * float(m), rel=1e-12)


def test_unknown_reduction_and_state_reward_are_refused() -> None:
    with pytest.raises(ValueError, match="reduction"):
        diversity_loss(**_two_completions(), reduction="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="state_reward"):
        diversity_loss(**_two_completions(), state_reward="total")  # type: ignore[arg-type]
