import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_prl_up_serves_and_ctrl_c_leaves_no_orphans(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "up",
            "--workdir",
            str(tmp_path),
            "--services",
            "reward,leaderboard",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "prl up exited early:\n" + "".join(lines)
            lines.append(line)
            if line.startswith("ready"):
                break
        out = "".join(lines)
        pids = [int(p) for p in re.findall(r"pid=(\d+)", out)]
        urls = dict(re.findall(r"^(\w+)\s+(http://\S+)$", out, re.M))
        assert set(urls) == {"reward", "leaderboard"} and len(pids) == 2
        for url in urls.values():
            assert httpx.get(url + "/readyz", timeout=5).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        time.sleep(0.5)
        assert not [p for p in pids if _alive(p)], "service processes outlived prl up"
    finally:
        if proc.poll() is None:
            proc.kill()


def _ready_app(status: int = 200):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        return JSONResponse({"status": "x"}, status_code=status)

    return app


def test_serve_in_thread_serves_until_exit_then_stops():
    from services.stack import serve_in_thread, wait_ready

    with serve_in_thread(_ready_app()) as url:
        assert url.startswith("http://127.0.0.1:")
        wait_ready(url, timeout_s=5)
        assert httpx.get(url + "/readyz", timeout=5).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/readyz", timeout=2)


def test_wait_ready_fails_fast_with_the_output_of_a_dead_process():
    from services.stack import StackError, free_port, wait_ready

    code = "import sys; print('boot failed: no model'); sys.exit(3)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    t0 = time.monotonic()
    with pytest.raises(StackError, match=r"exited with 3:\nboot failed: no model"):
        wait_ready(f"http://127.0.0.1:{free_port()}", proc=proc, timeout_s=60)
    assert time.monotonic() - t0 < 30  # did not wait for the timeout


def test_wait_ready_times_out_while_readyz_is_not_200():
    from services.stack import StackError, serve_in_thread, wait_ready

    with (
        serve_in_thread(_ready_app(503)) as url,
        pytest.raises(StackError, match=r"not ready after 0 s"),
    ):
        wait_ready(url, timeout_s=0.3)
