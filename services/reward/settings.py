"""Reward service settings (environment variables ``PRL_REWARD_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.catalog import default_port
from services.common.settings import ServiceSettings


class RewardSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PRL_REWARD_", extra="ignore", frozen=True)

    port: int = Field(
        default=default_port("reward"), ge=0, le=65535, description="TCP port (0: any free port)"
    )
    max_samples: int = Field(
        default=4096, ge=1, description="completions per request (all groups together); 413 above"
    )
    max_completion_chars: int = Field(
        default=65536, ge=1, description="characters per completion; 413 above"
    )
    max_boxes: int = Field(
        default=1000,
        ge=1,
        description="boxes per answer: GT above it → 413; a completion above it → reward 0 "
        "with error too_many_boxes (one runaway completion must not fail a training batch)",
    )
    max_group_size: int = Field(default=1024, ge=1, description="completions per group; 413 above")
    openrlhf_reward: str = Field(
        default="dig",
        description="preset used by /get_reward when a label names no reward",
    )
    openrlhf_invalid_label_reward: float = Field(
        default=0.0,
        description="/get_reward's reward for a sample whose label is missing or invalid "
        "(reported as extra_logs prl_error = 1; OpenRLHF cannot survive a 4xx for one sample)",
    )
    embedding_url: str | None = Field(
        default=None, description="embedding service base URL (DEVA alignment component)"
    )
    embedding_timeout_s: float = Field(
        default=30.0, gt=0, description="seconds one /v1/alignment call may take"
    )
    ready_components: list[str] = Field(
        default_factory=list,
        description='batch components whose dependency /readyz must see up, e.g. ["alignment"] '
        "(JSON list); by default none, so the service is ready for specs that do not use them",
    )
