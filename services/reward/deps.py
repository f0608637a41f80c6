"""Typed FastAPI dependencies of the reward service: what a route may take from the app.

``create_app`` puts these on ``app.state``; routes declare them as parameters
(``settings: Settings``) instead of reading ``request.app.state`` in their bodies.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import Counter

from services.reward.scoring import ScoringContext
from services.reward.settings import RewardSettings


async def get_settings(request: Request) -> RewardSettings:
    return request.app.state.settings


async def get_context(request: Request) -> ScoringContext:
    """The scoring context of the running app (its HTTP client for batch components)."""
    return request.app.state.context


async def get_failures(request: Request) -> Counter:
    """``prl_reward_failures``: failed completions by component and error code."""
    return request.app.state.reward_failures


Settings = Annotated[RewardSettings, Depends(get_settings)]
Context = Annotated[ScoringContext, Depends(get_context)]
Failures = Annotated[Counter, Depends(get_failures)]
