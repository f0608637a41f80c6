"""TrainerClient against the real trainer-service app (ASGI, fake training command)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from clients import AsyncTrainerClient, NotFoundError, UnprocessableEntityError
from clients.retry import RetryPolicy
from services.common.auth import DEV_API_KEY
from tests.trainer.jobs.test_manager import fake_command
from trainer.service import TrainerServiceSettings, create_app


def reject_bad(config):  # type: ignore[no-untyped-def]
    if config.get("lr", 1) <= 0:
        raise ValueError("lr: must be > 0")
    return dict(config)


def test_submit_wait_logs_list_cancel(tmp_path):
    app = create_app(
        TrainerServiceSettings(runs_dir=tmp_path / "runs", poll_interval_s=0.05),
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        validate=reject_bad,
        command=fake_command(steps=2, sleep=0.05),
    )

    async def go():  # type: ignore[no-untyped-def]
        async with app.router.lifespan_context(app):
            tc = AsyncTrainerClient(
                "http://t",
                api_key=DEV_API_KEY,
                transport=httpx.ASGITransport(app=app),
                retry=RetryPolicy(max_retries=0),
            )
            async with tc:
                job = await tc.submit({"lr": 1e-4}, name="tiny")
                assert (job.name, job.status) in {("tiny", "pending"), ("tiny", "running")}
                done = await tc.wait(job.id, timeout_s=30, poll_s=0.05)
                assert (done.status, done.step) == ("completed", 2)
                assert done.latest_metrics == {"reward/mean": 0.2}
                listing = await tc.jobs()
                assert listing.total == 1 and listing.jobs[0].id == job.id
                assert isinstance(await tc.logs(job.id, lines=5), str)
                assert (await tc.cancel(job.id)).status == "completed"  # already finished
                with pytest.raises(UnprocessableEntityError, match="lr: must be > 0"):
                    await tc.submit({"lr": -1.0})
                with pytest.raises(NotFoundError):
                    await tc.job(999)

    asyncio.run(go())
