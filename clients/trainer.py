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

import httpx

from clients.base import AsyncAPIClient, Call, SyncAPIClient, get_call, post_call
from schemas.jobs import JobList, JobSubmit, JobView, LaunchProfile

TERMINAL = ("completed", "failed", "cancelled")


def submit_call(
    config: Mapping[str, Any] | JobSubmit,
    *,
    name: str = "job",
    launch: LaunchProfile = "cpu",
    num_processes: int = 1,
) -> Call[JobView]:
    """``POST /v1/jobs``: the config is validated by the service (422 says what is wrong)."""
    body = (
        config
        if isinstance(config, JobSubmit)
        else JobSubmit(name=name, config=dict(config), launch=launch, num_processes=num_processes)
    )
    return post_call("/v1/jobs", body, JobView)


def jobs_call(*, limit: int = 50, offset: int = 0) -> Call[JobList]:
    return get_call("/v1/jobs", JobList, limit=limit, offset=offset)


def job_call(job_id: int) -> Call[JobView]:
    return get_call(f"/v1/jobs/{job_id}", JobView)


def logs_call(job_id: int, *, lines: int = 200) -> Call[str]:
    """The last ``lines`` lines of the job's log."""
    return Call("GET", f"/v1/jobs/{job_id}/logs", _text, {"lines": lines})


def cancel_call(job_id: int) -> Call[JobView]:
    return post_call(f"/v1/jobs/{job_id}/cancel", {}, JobView)


def _text(response: httpx.Response) -> str:
    return response.text


def _finished(job: JobView, job_id: int, now: float, deadline: float, timeout_s: float) -> bool:
    """Whether :meth:`TrainerClient.wait` is done with ``job``; raises ``TimeoutError`` when
    the deadline passed first."""
    if job.status in TERMINAL:
        return True
    if now >= deadline:
        raise TimeoutError(
            f"job {job_id} still {job.status} after {timeout_s:g} s (step {job.step})"
        )
    return False


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
        return self.send(submit_call(config, name=name, launch=launch, num_processes=num_processes))

    def jobs(self, *, limit: int = 50, offset: int = 0) -> JobList:
        return self.send(jobs_call(limit=limit, offset=offset))

    def job(self, job_id: int) -> JobView:
        return self.send(job_call(job_id))

    def logs(self, job_id: int, *, lines: int = 200) -> str:
        """The last ``lines`` lines of the job's log."""
        return self.send(logs_call(job_id, lines=lines))

    def cancel(self, job_id: int) -> JobView:
        return self.send(cancel_call(job_id))

    def wait(self, job_id: int, *, timeout_s: float = 3600.0, poll_s: float = 1.0) -> JobView:
        """Poll until the job is completed, failed or cancelled; ``TimeoutError`` after
        ``timeout_s`` (the job keeps running)."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if _finished(job, job_id, time.monotonic(), deadline, timeout_s):
                return job
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
        call = submit_call(config, name=name, launch=launch, num_processes=num_processes)
        return await self.send(call)

    async def jobs(self, *, limit: int = 50, offset: int = 0) -> JobList:
        return await self.send(jobs_call(limit=limit, offset=offset))

    async def job(self, job_id: int) -> JobView:
        return await self.send(job_call(job_id))

    async def logs(self, job_id: int, *, lines: int = 200) -> str:
        return await self.send(logs_call(job_id, lines=lines))

    async def cancel(self, job_id: int) -> JobView:
        return await self.send(cancel_call(job_id))

    async def wait(self, job_id: int, *, timeout_s: float = 3600.0, poll_s: float = 1.0) -> JobView:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            job = await self.job(job_id)
            if _finished(job, job_id, loop.time(), deadline, timeout_s):
                return job
            await self._sleep(poll_s)
