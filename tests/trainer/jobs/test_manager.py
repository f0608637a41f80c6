"""Job supervision with real subprocesses (a stand-in training command) and a real SQLite store."""

import json
import os
import signal
import sys
import time

import pytest

from schemas.jobs import JobSubmit
from services.store.db import make_engine, session_factory, upgrade
from trainer.jobs.manager import JobManager, JobPaths, read_metrics

FAKE_TRAIN = """
import json, sys, time
steps, sleep, code = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
with open(sys.argv[4], "a") as f:
    for step in range(1, steps + 1):
        f.write(json.dumps({"step": step, "reward/mean": step / 10, "note": "x"}) + "\\n")
        f.flush()
        time.sleep(sleep)
sys.exit(code)
"""


def fake_command(steps=3, sleep=0.0, code=0):
    def command(paths: JobPaths, launch: str, n: int) -> list[str]:
        return [
            sys.executable,
            "-c",
            FAKE_TRAIN,
            str(steps),
            str(sleep),
            str(code),
            str(paths.metrics),
        ]

    return command


@pytest.fixture
def sessions(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


def make_manager(tmp_path, sessions, **kw):
    return JobManager(tmp_path / "runs", sessions, validate=lambda c: dict(c), **kw)


def wait_for(mgr, job_id, statuses, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mgr.tick()
        view = mgr.get(job_id)
        if view.status in statuses:
            return view
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {mgr.get(job_id).status}")


def test_job_runs_to_completion_and_metrics_reach_the_store(tmp_path, sessions):
    mgr = make_manager(tmp_path, sessions, command=fake_command(steps=3))
    view = mgr.submit(JobSubmit(name="a", config={"seed": 1}))
    assert view.status == "running"
    done = wait_for(mgr, view.id, {"completed", "failed"})
    assert done.status == "completed", done.message
    assert done.step == 3
    assert done.latest_metrics == {"reward/mean": pytest.approx(0.3)}
    stored = json.loads(mgr.paths(view.id).config.read_text())
    assert stored == {"seed": 1, "run_dir": str(mgr.paths(view.id).dir)}  # the job's own directory


def test_failed_job_reports_exit_code_and_log_tail(tmp_path, sessions):
    mgr = make_manager(tmp_path, sessions, command=fake_command(steps=1, code=3))
    view = mgr.submit(JobSubmit(config={}))
    done = wait_for(mgr, view.id, {"completed", "failed"})
    assert done.status == "failed"
    assert done.message.startswith("exit code 3")


def test_only_max_running_jobs_run_at_once(tmp_path, sessions):
    mgr = make_manager(tmp_path, sessions, command=fake_command(steps=2, sleep=0.3))
    a = mgr.submit(JobSubmit(config={}))
    b = mgr.submit(JobSubmit(config={}))
    assert (mgr.get(a.id).status, mgr.get(b.id).status) == ("running", "pending")
    wait_for(mgr, a.id, {"completed"})
    assert wait_for(mgr, b.id, {"completed"}).status == "completed"


def test_cancel_stops_the_process_group(tmp_path, sessions):
    mgr = make_manager(tmp_path, sessions, command=fake_command(steps=1000, sleep=0.1))
    view = mgr.submit(JobSubmit(config={}))
    time.sleep(0.5)
    mgr.cancel(view.id)
    done = wait_for(mgr, view.id, {"cancelled", "failed", "completed"})
    assert done.status == "cancelled"
    pending = mgr.submit(JobSubmit(config={}))  # the slot is free again → it starts
    mgr.cancel(pending.id)
    assert wait_for(mgr, pending.id, {"cancelled"}).status == "cancelled"


def test_restarted_service_reattaches_to_a_live_job(tmp_path, sessions):
    first = make_manager(tmp_path, sessions, command=fake_command(steps=5, sleep=0.2))
    view = first.submit(JobSubmit(config={}))
    del first  # the service went away; the job's wrapper lives on
    second = make_manager(tmp_path, sessions)
    second.recover()
    assert second.get(view.id).status == "running"
    done = wait_for(second, view.id, {"completed", "failed"})
    assert done.status == "completed" and done.step == 5


def test_restart_marks_a_vanished_job_failed(tmp_path, sessions):
    first = make_manager(tmp_path, sessions, command=fake_command(steps=1000, sleep=0.1))
    view = first.submit(JobSubmit(config={}))
    time.sleep(0.3)
    pid = int(first.paths(view.id).pid.read_text())
    os.killpg(pid, signal.SIGKILL)
    first.procs[view.id].wait()
    second = make_manager(tmp_path, sessions)
    second.recover()
    after = second.get(view.id)
    assert after.status == "failed"
    assert "gone" in after.message


def test_read_metrics_leaves_a_partial_line_for_later(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a"')
    rows, offset = read_metrics(path, 0)
    assert rows == [(1, {"a": 1.0})]
    with open(path, "a") as f:
        f.write(': 2.5, "flag": true}\nnot json\n{"a": 3}\n')
    rows, _ = read_metrics(path, offset)
    assert rows == [(2, {"a": 2.5})]
