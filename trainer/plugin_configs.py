"""Run-config sections of the policy-loss plug-ins CPPO, PAPO and GRPO-CARE (no torch here).

Equations and papers: trainer/objectives/cppo.py, papo.py, care.py and docs/training.md
("Policy losses").
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CppoConfig(_Frozen):
    """``loss_type: cppo``: keep the top-|A| completions of each group before the forward."""

    keep_ratio: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="share of each group's completions kept, k = max(1, ceil(keep_ratio·G))",
    )

    def keep_count(self, group_size: int) -> int:
        """k = max(1, ⌈keep_ratio · G⌉)."""
        return cppo_keep_count(group_size, self.keep_ratio)


def cppo_keep_count(group_size: int, keep_ratio: float) -> int:
    """k = max(1, ⌈keep_ratio · G⌉); keep_ratio must be in (0, 1]."""
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
    return max(1, math.ceil(keep_ratio * group_size - 1e-9))


class PapoConfig(_Frozen):
    """PAPO implicit perception loss −γ·KL(π(·|I) ‖ π(·|I_mask)) + η_1·H + η_2·H_mask."""

    enabled: bool = Field(False, description="add PAPO's perception loss to the policy loss")
    gamma: float = Field(0.01, ge=0.0, description="γ, weight of the (maximised) perception KL")
    eta_policy: float = Field(0.03, ge=0.0, description="η_1, entropy penalty with the image")
    eta_masked: float = Field(
        0.03, ge=0.0, description="η_2, entropy penalty with the masked image"
    )
    view: Literal["masked", "no_image"] = Field(
        "masked",
        description="masked: random patch tokens zeroed (the paper's); no_image: the image "
        "dropped from the prompt (PGPO's text-only forward)",
    )
    mask_ratio: float = Field(
        0.6, gt=0.0, le=1.0, description="share of image patch tokens masked (view masked)"
    )


class CareConfig(_Frozen):
    """GRPO-CARE consistency bonus b_i = λ·a_i for accurate, reference-consistent answers."""

    enabled: bool = Field(False, description="add the consistency bonus to the reward")
    bonus: float = Field(0.5, ge=0.0, description="λ: the bonus is λ times the base reward")
    margin: float = Field(
        0.01, ge=0.0, description="δ: consistent when c_i ≥ mean over accurate peers − δ"
    )
    accuracy_threshold: float = Field(
        0.1, description="τ_acc: a completion is accurate when its reward exceeds it (and the mean)"
    )
    confidence_cap: float | None = Field(
        0.95, gt=0.0, le=1.0, description="c_max, upper clamp of the answer likelihood c_i"
    )
    ema_decay: float = Field(
        0.995, ge=0.0, lt=1.0, description="α in θ_ref ← α·θ_ref + (1 − α)·θ per generation batch"
    )
    answer_open: str = Field("<answer>", description="tag opening the answer span")
    answer_close: str = Field("</answer>", description="tag closing the answer span")
