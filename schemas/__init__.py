"""The wire contract: pydantic v2 models only (no torch, no fastapi).

Every arrow of the architecture (trainer → reward → embedding, runner → store, …) carries
these models. Adding fields is allowed; renaming fields breaks the contract.
"""

from schemas.geometry import Box, CoordFrame, Frame
from schemas.reward import (
    AggregateRef,
    BatchStats,
    BoxSolution,
    ComponentRef,
    ErrorInfo,
    Group,
    GroupResult,
    GroupsRequest,
    GroupsResponse,
    LabelSolution,
    RewardRef,
    RewardSpec,
    Sample,
    SampleResult,
    ScoreRequest,
    ScoreResponse,
    Solution,
)

__all__ = [
    "AggregateRef",
    "BatchStats",
    "Box",
    "BoxSolution",
    "ComponentRef",
    "CoordFrame",
    "ErrorInfo",
    "Frame",
    "Group",
    "GroupResult",
    "GroupsRequest",
    "GroupsResponse",
    "LabelSolution",
    "RewardRef",
    "RewardSpec",
    "Sample",
    "SampleResult",
    "ScoreRequest",
    "ScoreResponse",
    "Solution",
]
