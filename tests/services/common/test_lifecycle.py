import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from services.stack import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[3]


def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.services.common.drain_app:create_app",
            "--factory",
            "--port",
            str(port),
            "--timeout-graceful-shutdown",
            "10",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(url, proc=proc, timeout_s=30)
        results: dict = {}

        def in_flight():
            results["slow"] = httpx.get(url + "/slow", params={"seconds": 1.5}, timeout=10)

        t = threading.Thread(target=in_flight)
        t.start()
        time.sleep(0.4)  # the slow request is now being served
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = False
        try:
            r = httpx.get(url + "/slow", params={"seconds": 0}, timeout=2)
            refused = r.status_code == 503 and "retry-after" in r.headers
        except httpx.HTTPError:
            refused = True  # listener already closed: connection refused
        t.join(10)
        assert refused, "a request after SIGTERM was served"
        assert results["slow"].status_code == 200
        assert results["slow"].json() == {"slept": 1.5}
        assert proc.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after draining
    finally:
        if proc.poll() is None:
            proc.kill()
