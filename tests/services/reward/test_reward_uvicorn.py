"""One test against a real uvicorn process started with ``prl serve reward``."""

import os
import shutil
import socket
import subprocess
import sys
import time

import httpx

GOOD = "<think>t</think><answer>[0, 0, 10, 10]</answer>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_prl_serve_reward_answers_groups():
    port = free_port()
    env = {**os.environ, "PRL_REWARD_LOG_LEVEL": "warning"}
    env.pop("PYTHONPATH", None)  # a tests/ entry would shadow the services package
    prl = shutil.which("prl")
    head = [prl] if prl else [sys.executable, "-m", "services.cli"]
    cmd = [*head, "serve", "reward", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "reward service did not become ready"
            time.sleep(0.2)
        body = {
            "reward": "dig",
            "groups": [
                {"id": "g", "solution": {"boxes": [[0, 0, 10, 10]]}, "completions": [GOOD, "junk"]}
            ],
        }
        r = httpx.post(f"{base}/v1/score/groups", json=body, timeout=10)
        assert r.status_code == 200
        g = r.json()["groups"][0]
        assert g["rewards"] == [3.0, 0.0]
        assert g["errors"][1]["code"] == "no_answer"
        assert r.headers["content-type"].startswith("application/json")
        assert "prl_http_requests_total" in httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
