"""Trainer-service routes in-process (ASGI), over the same JobManager the subprocess tests use."""

import asyncio
import time

import httpx

from services.common.auth import DEV_API_KEY
from tests.trainer.jobs.test_manager import fake_command
from trainer.service import TrainerServiceSettings, create_app

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}


def reject_bad(config):
    if "lr" in config and config["lr"] <= 0:
        raise ValueError("lr: must be > 0")
    return dict(config)


def run(tmp_path, scenario):
    settings = TrainerServiceSettings(runs_dir=tmp_path / "runs", poll_interval_s=0.1)
    app = create_app(
        settings,
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        validate=reject_bad,
        command=fake_command(steps=2, sleep=0.1),
    )

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await scenario(c)

    return asyncio.run(go())


def test_submit_needs_a_write_key_and_valid_config(tmp_path):
    async def scenario(c):
        assert (await c.post("/v1/jobs", json={"config": {}})).status_code == 401
        bad = await c.post("/v1/jobs", json={"config": {"lr": -1}}, headers=AUTH)
        assert bad.status_code == 422 and "lr: must be > 0" in bad.json()["error"]["message"]
        unknown = await c.post("/v1/jobs", json={"config": {}, "launch": "tpu"}, headers=AUTH)
        assert unknown.status_code == 422
        assert (await c.get("/v1/jobs/999")).status_code == 404
        assert (await c.post("/v1/jobs/999/cancel", headers=AUTH)).status_code == 404

    run(tmp_path, scenario)


def test_job_lifecycle_over_http(tmp_path):
    async def scenario(c):
        r = await c.post("/v1/jobs", json={"name": "demo", "config": {"lr": 1e-4}}, headers=AUTH)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            view = (await c.get(f"/v1/jobs/{job_id}")).json()
            if view["status"] == "completed":
                break
            await asyncio.sleep(0.1)
        assert view["status"] == "completed" and view["step"] == 2
        assert view["latest_metrics"] == {"reward/mean": 0.2}
        listing = (await c.get("/v1/jobs")).json()
        assert listing["total"] == 1 and listing["jobs"][0]["name"] == "demo"
        assert (await c.get(f"/v1/jobs/{job_id}/logs")).status_code == 200
        # cancelling a finished job is a no-op that reports its final state
        assert (await c.post(f"/v1/jobs/{job_id}/cancel", headers=AUTH)).json()[
            "status"
        ] == "completed"

    run(tmp_path, scenario)
