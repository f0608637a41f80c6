"""The trainer unchanged under DDP: 2 CPU processes on gloo, launched as the trainer service
launches its ``cpu_ddp`` profile (torchrun with ACCELERATE_USE_CPU=true)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from trainer.jobs.manager import launcher

pytestmark = [pytest.mark.torch, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "trainer" / "configs" / "tiny_dig_cpu.yaml"


def test_two_process_gloo_training(tmp_path):
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg.update(max_steps=2, run_dir=str(tmp_path / "run"), checkpoint={"every_steps": 2, "keep": 1})
    cfg["task"]["root"] = str(tmp_path / "data")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [*launcher("cpu_ddp", 2), "-m", "services.cli", "train", "--config", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in records] == [1, 2]  # one writer (rank 0), no duplicated steps
    assert all(r["world_size"] == 2 for r in records)
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir()
