"""kill -9 one of two uvicorn workers while SDK clients score: nothing is lost after retries.

A real ``uvicorn --workers 2`` reward service; 12 threads each loop on
``RewardClient.score_groups`` (the SDK's retries: connection errors and 5xx, with backoff).
About 2 s in, one worker process gets SIGKILL mid-load. Promises: every call returns a
complete, correct response (requests in flight on the dead worker are retried by the SDK on
the other), the surviving worker keeps answering while the dead one is gone, and the
supervisor brings the worker count back. Bounded: ~8 s of load, 20 s at most.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from clients import RewardClient
from clients.retry import RetryPolicy
from tests.services.reliability.helpers import uvicorn_process

GT = [[10, 10, 50, 50], [60, 60, 90, 90]]
COMPLETIONS = [
    "<answer>[[10,10,50,50],[60,60,90,90]]</answer>",
    "<answer>[[10,10,50,50]]</answer>",
    "<answer>[[70,10,80,20]]</answer>",
    "no answer",
]
EXPECTED_F1 = [1.0, 2 / 3, 0.0, 0.0]
LOAD_S = 8.0
KILL_AT_S = 2.0
KILLS = 3  # kills at most, 1.5 s apart, within LOAD_S


def worker_pids(master: int) -> list[int]:
    """uvicorn's worker processes (spawned children; not multiprocessing's resource tracker)."""
    path = Path(f"/proc/{master}/task/{master}/children")
    pids = [int(p) for p in path.read_text().split()] if path.exists() else []
    out = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            out.append(pid)
    return out


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (clock ticks), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def open_sockets(pid: int) -> int:
    """Socket descriptors a process holds: its accepted client connections plus the listener."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:  # closed while we looked
            continue
    return count


class RetryLog(logging.Handler):
    """Counts the SDK's "retry" warnings (clients.base logs one per retry)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retry" in record.getMessage():
            self.retries += 1


def group(i: int) -> dict:
    return {
        "id": f"g{i}",
        "solution": {"boxes": GT},
        "frame": {"coords": "pixel", "image_size": [100, 100]},
        "completions": COMPLETIONS,
    }


@pytest.mark.slow
def test_kill_9_one_of_two_workers_loses_no_request():
    with uvicorn_process("services.reward.app:create_app", {}, workers=2) as (proc, url):
        deadline = time.monotonic() + 20
        while len(worker_pids(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        before = worker_pids(proc.pid)
        assert len(before) == 2
        t0 = time.monotonic()
        done: list[float] = []  # completion times of successful calls
        failures: list[str] = []
        wrong: list[str] = []
        lock = threading.Lock()
        policy = RetryPolicy(max_retries=8, initial_backoff_s=0.1, max_backoff_s=1.0)

        def client_loop(k: int) -> None:
            with RewardClient(url, retry=policy, timeout=10.0) as client:
                i = 0
                while time.monotonic() - t0 < LOAD_S:
                    i += 1
                    try:
                        out = client.score_groups([group(k * 10_000 + i)], reward="dig")
                    except Exception as exc:  # a lost request: the SDK gave up
                        with lock:
                            failures.append(f"{type(exc).__name__}: {exc}")
                        continue
                    f1 = out.groups[0].components["f1"]
                    with lock:
                        done.append(time.monotonic() - t0)
                        if [round(v, 6) for v in f1] != [round(v, 6) for v in EXPECTED_F1]:
                            wrong.append(str(f1))

        threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(12)]
        for t in threads:
            t.start()
        retry_log = RetryLog()
        logging.getLogger("clients.base").addHandler(retry_log)
        time.sleep(KILL_AT_S)
        # the worker holding the most client connections (the kernel may hand most
        # connections of a shared listening socket to one worker), CPU time breaking ties:
        # 12 clients in a tight loop keep requests in flight on every connection it holds
        # requests are short, so on a loaded machine the victim may hold none in flight at
        # the instant of the kill (idle keep-alive connections are replaced silently by httpx):
        # kill again, up to KILLS times, until the SDK has had to retry one
        victims: list[int] = []
        for _ in range(KILLS):
            workers = worker_pids(proc.pid)
            victim = max(workers, key=lambda pid: (open_sockets(pid), cpu_ticks(pid)))
            os.kill(victim, signal.SIGKILL)
            victims.append(victim)
            killed_at = time.monotonic() - t0
            time.sleep(1.5)
            if retry_log.retries:
                break
        for t in threads:
            t.join(30)
        replaced_by = time.monotonic() + 20  # a loaded machine restarts workers slowly
        after = worker_pids(proc.pid)
        while len(after) < 2 and time.monotonic() < replaced_by:
            time.sleep(0.2)
            after = worker_pids(proc.pid)
        logging.getLogger("clients.base").removeHandler(retry_log)

    assert failures == []
    assert wrong == []
    assert retry_log.retries >= 1  # requests were in flight on the victim and were retried
    served_after = [t for t in done if t > killed_at + 0.5]
    assert len(served_after) > 10, (len(done), killed_at)
    assert not set(victims) & set(after) and len(after) == 2  # the supervisor replaced them
