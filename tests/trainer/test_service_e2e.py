"""A real job through the trainer service: ``accelerate launch`` of ``prl train`` on the tiny
Qwen2-VL with DiG data, metrics ingested into the store while it runs, then the checkpoint."""

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import yaml

from services.common.auth import DEV_API_KEY
from trainer.service import TrainerServiceSettings, create_app

pytestmark = pytest.mark.torch
CONFIG = Path(__file__).parents[2] / "trainer" / "configs" / "tiny_dig_cpu.yaml"


def test_real_job_runs_under_accelerate_and_reports_metrics(tmp_path):
    config = yaml.safe_load(CONFIG.read_text())
    config["max_steps"] = 2
    config["task"]["root"] = str(tmp_path / "data")
    config["checkpoint"] = {"every_steps": 2, "keep": 1}
    settings = TrainerServiceSettings(runs_dir=tmp_path / "runs", poll_interval_s=0.5)
    app = create_app(settings, database_url=f"sqlite:///{tmp_path / 's.db'}")

    async def scenario():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as c:
                r = await c.post(
                    "/v1/jobs",
                    json={"name": "tiny", "config": config, "launch": "cpu"},
                    headers={"Authorization": f"Bearer {DEV_API_KEY}"},
                )
                assert r.status_code == 201, r.text
                job_id = r.json()["id"]
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    view = (await c.get(f"/v1/jobs/{job_id}")).json()
                    if view["status"] not in ("pending", "running"):
                        break
                    await asyncio.sleep(1)
                logs = (await c.get(f"/v1/jobs/{job_id}/logs", params={"lines": 40})).text
                return view, logs

    view, logs = asyncio.run(scenario())
    assert view["status"] == "completed", f"{view}\n{logs}"
    assert view["step"] == 2
    assert any(k.startswith("reward") for k in view["latest_metrics"]), view["latest_metrics"]
    job_dir = tmp_path / "runs" / f"job-{view['id']}"
    assert (job_dir / "metrics.jsonl").exists()
    assert any(p.name.startswith("checkpoint-") for p in job_dir.rglob("checkpoint-*"))
