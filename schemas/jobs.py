"""Training-job API models (trainer service)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
LaunchProfile = Literal["cpu", "cpu_ddp", "single_gpu", "ddp", "zero2", "zero3", "fsdp"]


class JobSubmit(BaseModel):
    """A run config (the same YAML/JSON ``prl train --config`` reads) plus how to launch it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="job", min_length=1, max_length=200)
    config: dict[str, Any] = Field(description="the run config, validated at submission")
    launch: LaunchProfile = Field(
        default="cpu", description="accelerate config shipped in trainer/configs/accelerate"
    )
    num_processes: int = Field(default=1, ge=1, le=1024)


class JobView(BaseModel):
    id: int
    name: str
    status: JobStatus
    step: int | None = None
    latest_metrics: dict[str, float] = Field(default_factory=dict)
    message: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobList(BaseModel):
    jobs: list[JobView]
    total: int
