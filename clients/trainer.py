"""Typed clients of the trainer service: submit a run config, follow and cancel jobs.

::

    from clients import TrainerClient
    with TrainerClient("http://127.0.0.1:8004") as tc:
        job = tc.submit(yaml.safe_load(open("trainer/configs/tiny_dig_cpu.yaml")), name="tiny")
        job = tc.wait(job.id, timeout_s=600)
        print(job.status, job.latest_metrics, tc.logs(job.id, lines=20))

``submit`` and ``cancel`` need a ``write``-scoped key (``api_key=`` or ``PRL_API_KEY``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from clients.base import AsyncAPIClient, SyncAPIClient
from schemas.jobs import JobList, JobSubmit, JobView, LaunchProfile

TERMINAL = ("completed", "failed", "cancelled")


def _submit(
    config: Mapping[str, Any] | JobSubmit, name: str, launch: LaunchProfile, num_processes: int
) -> JobSubmit:
    if isinstance(config, JobSubmit):
        return config
    return JobSubmit(name=name, config=dict(config), launch=launch, num_processes=num_processes)


class _TrainerMixin:
    env_url = "PRL_TRAINER_URL"
    default_url = "http://127.0.0.1:8004"


class TrainerClient(_TrainerMixin, SyncAPIClient):
    """Blocking trainer-service client (``/v1/jobs``)."""

    def submit(
        self,
        config: Mapping[str, Any] | JobSubmit,
        *,
        name: str = "job",
        launch: LaunchProfile = "cpu",
        num_processes: int = 1,
    ) -> JobView:
        """``POST /v1/jobs``: the config is validated by the service (422 says what is wrong)."""
        body = _submit(config, name, launch, num_processes)
        return self.post_model("/v1/jobs", body, JobView)

    def jobs(self, *, limit: int = 50, offset: int = 0) -> JobList:
        return self.get_model("/v1/jobs", JobList, limit=limit, offset=offset)

    def job(self, job_id: int) -> JobView:
        return self.get_model(f"/v1/jobs/{job_id}", JobView)

    def logs(self, job_id: int, *, lines: int = 200) -> str:
        """The last ``lines`` lines of the job's log."""
        return self.request("GET", f"/v1/jobs/{job_id}/logs", params={"lines": lines}).text

    def cancel(self, job_id: int) -> JobView:
        return self.post_model(f"/v1/jobs/{job_id}/cancel", {}, JobView)

    def wait(self, job_id: int, *, timeout_s: float = 3600.0, poll_s: float = 1.0) -> JobView:
        """Poll until the job is completed, failed or cancelled; ``TimeoutError`` after
        ``timeout_s`` (the job keeps running)."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if job.status in TERMINAL:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"job {job_id} still {job.status} after {timeout_s:g} s (step {job.step})"
                )
            self._sleep(poll_s)


class AsyncTrainerClient(_TrainerMixin, AsyncAPIClient):
    """Asyncio trainer-service client."""

    async def submit(
        self,
        config: Mapping[str, Any] | JobSubmit,
        *,
        name: str = "job",
        launch: LaunchProfile = "cpu",
        num_processes: int = 1,
    ) -> JobView:
        body = _submit(config, name, launch, num_processes)
        return await self.post_model("/v1/jobs", body, JobView)

    async def jobs(self, *, limit: int = 50, offset: int = 0) -> JobList:
        return await self.get_model("/v1/jobs", JobList, limit=limit, offset=offset)

    async def job(self, job_id: int) -> JobView:
        return await self.get_model(f"/v1/jobs/{job_id}", JobView)

    async def logs(self, job_id: int, *, lines: int = 200) -> str:
        response = await self.request("GET", f"/v1/jobs/{job_id}/logs", params={"lines": lines})
        return response.text

    async def cancel(self, job_id: int) -> JobView:
        return await self.post_model(f"/v1/jobs/{job_id}/cancel", {}, JobView)

    async def wait(self, job_id: int, *, timeout_s: float = 3600.0, poll_s: float = 1.0) -> JobView:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            job = await self.job(job_id)
            if job.status in TERMINAL:
                return job
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"job {job_id} still {job.status} after {timeout_s:g} s (step {job.step})"
                )
            await self._sleep(poll_s)
