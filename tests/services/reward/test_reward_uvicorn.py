"""One test against a real uvicorn process started with ``prl serve reward``."""

import os
import shutil
import subprocess
import sys

import httpx

from services.stack import free_port, wait_ready

GOOD = "<think>t</think><answer>[0, 0, 10, 10]</answer>"


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
        wait_ready(base, proc=proc, timeout_s=60)
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
