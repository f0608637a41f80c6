"""``prl jobs`` against a real trainer service under uvicorn (a fake training command)."""

from __future__ import annotations

import json
from pathlib import Path

from services.cli.errors import run
from services.common.auth import DEV_API_KEY
from services.stack import serve_in_thread
from tests.trainer.jobs.test_manager import fake_command
from trainer.service import TrainerServiceSettings, create_app

ROOT = Path(__file__).resolve().parents[3]


def test_submit_wait_list_show_logs_cancel(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRL_API_KEY", DEV_API_KEY)
    app = create_app(
        TrainerServiceSettings(runs_dir=tmp_path / "runs", poll_interval_s=0.05),
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        validate=lambda c: dict(c),
        command=fake_command(steps=2, sleep=0.05),
    )
    cfg = str(ROOT / "trainer/configs/tiny_dig_cpu.yaml")
    with serve_in_thread(app) as base:
        url = ["--trainer-url", base]
        assert (
            run(["jobs", "submit", "--config", cfg, "--name", "tiny", "--wait", "--json", *url])
            == 0
        )
        job = json.loads(capsys.readouterr().out)
        assert (job["name"], job["status"], job["step"]) == ("tiny", "completed", 2)
        assert run(["jobs", "list", *url]) == 0
        listed = capsys.readouterr().out
        assert f"{job['id']:>5}  completed" in listed and "tiny" in listed
        assert run(["jobs", "show", str(job["id"]), *url]) == 0
        assert "reward/mean" in capsys.readouterr().out
        assert run(["jobs", "logs", str(job["id"]), *url]) == 0
        capsys.readouterr()
        assert run(["jobs", "cancel", str(job["id"]), *url]) == 0
        assert "completed" in capsys.readouterr().out  # a finished job stays finished
        # mistakes are one line, before anything is sent
        assert run(["jobs", "submit", "--config", cfg, "--launch", "gpu", *url]) == 2
        assert "'gpu': use one of cpu, cpu_ddp, single_gpu" in capsys.readouterr().err
        assert run(["jobs", "show", "999", *url]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no training job with id 999" in err[0]
