"""``prl bench run`` killed with SIGKILL mid-run and restarted: nothing lost, nothing twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT count(*) FROM predictions").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def _cmd(model: Path, root: Path, db: Path) -> list[str]:
    return [
        sys.executable, "-m", "services.cli", "bench", "run",
        "--task", "dig", "--task-opt", f"root={root}",
        "--model", str(model), "--max-new-tokens", "48",
        "--db", f"sqlite:///{db}", "--key", "kill-test",
        "--batch-size", "1", "--n-boot", "0", "--no-progress", "--json",
    ]  # fmt: skip


def test_sigkill_mid_run_then_restart_completes_without_double_counting(
    sharp_vlm, dig_root, dig_task, tmp_path
):
    from services.benchmark.adapters import get_adapter
    from services.benchmark.runner import RunOptions, run_benchmark
    from services.benchmark.scoring import InProcessScorer
    from services.benchmark.store import MemoryRunStore

    db = tmp_path / "store.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        _cmd(sharp_vlm, dig_root, db), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while _count(db) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _count(db)
    assert proc.returncode == -signal.SIGKILL
    assert 2 <= killed_at < 9, f"the run was not killed mid-way ({killed_at} of 9 stored)"

    done = subprocess.run(
        _cmd(sharp_vlm, dig_root, db), env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["n_samples"] == 9 and out["n_new"] == 9 - killed_at
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT sample_id, prediction FROM predictions").fetchall()
        status = con.execute("SELECT status FROM runs WHERE key = 'kill-test'").fetchone()[0]
    assert len(rows) == len({r[0] for r in rows}) == 9
    assert status == "completed"

    # the same run uninterrupted, in-process: identical predictions and metrics
    store = MemoryRunStore()
    adapter = get_adapter("transformers", model=str(sharp_vlm), max_new_tokens=48)
    clean = run_benchmark(
        dig_task,
        adapter,
        store=store,
        scorer=InProcessScorer(),
        options=RunOptions(progress=False, n_boot=0),
    )
    assert dict(rows) == {r["sample_id"]: r["prediction"] for r in store.rows(clean.run_id)}
    assert {m["name"]: m["value"] for m in out["metrics"]} == {
        m.name: m.value for m in clean.metrics
    }
