"""Graceful shutdown of every service (services/common/lifecycle.py + GuardMiddleware).

In process: once draining, ``/readyz`` answers 503 naming ``draining`` and a new API request
gets 503 + ``Retry-After`` (code ``draining``) while ``/healthz`` stays 200.

Under a real uvicorn process per service: a slow request is in flight (seen in
``prl_http_in_flight``) when SIGTERM arrives; it completes with its full answer, new
connections are refused (or answered 503 draining), and the process exits 0/−SIGTERM within
the drain time. The leaderboard adds: a ``POST /v1/runs`` in flight during SIGTERM lands in
full; one in flight during SIGKILL lands in full or not at all — never half.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from services.common.auth import DEV_API_KEY
from services.embedding.tiny import build_tiny_encoder
from tests.services.reliability.helpers import AUTH, uvicorn_process
from tests.services.service_apps import APPS

N_PREDICTIONS = 8000
PROBE = {
    "reward": ("POST", "/v1/score", {"reward": "dig", "samples": []}),
    "embedding": ("POST", "/v1/embed", {"texts": ["a"]}),
    "leaderboard": ("GET", "/v1/suites", None),
    "trainer": ("GET", "/v1/jobs", None),
}


@pytest.mark.parametrize("service", sorted(APPS))
def test_draining_flips_readiness_and_refuses_new_work(service, tmp_path):
    app = APPS[service](tmp_path)
    with TestClient(app, headers=AUTH) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        app.state.service.shutting_down = True  # what the lifecycle hook / lifespan exit set
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "draining" in ready.json()["failing"]
        method, path, body = PROBE[service]
        r = client.request(method, path, json=body)
        assert r.status_code == 503 and r.headers["retry-after"]
        assert r.json()["error"]["code"] == "draining"
        assert client.get("/healthz").status_code == 200  # alive, just not taking work
        app.state.service.shutting_down = False


def slow_request(service: str) -> tuple[str, str, dict]:
    """A request that takes a second or more on this machine."""
    if service == "reward":
        gt = [[i * 5, i * 5, i * 5 + 20, i * 5 + 20] for i in range(30)]
        ans = "<answer>" + json.dumps(gt) + "</answer>"
        groups = [
            {
                "id": f"g{k}",
                "solution": {"boxes": gt},
                "frame": {"coords": "pixel", "image_size": [400, 400]},
                "completions": [ans] * 16,
            }
            for k in range(640)  # 10 240 completions (PRL_REWARD_MAX_SAMPLES raised in env_for)
        ]
        return "POST", "/v1/score/groups", {"reward": "dig", "groups": groups}
    if service == "embedding":  # one forward per text (max batch size 1)
        return "POST", "/v1/embed", {"texts": [f"text number {i}" for i in range(400)]}
    if service == "leaderboard":
        return "POST", "/v1/runs", run_upload()
    return "GET", "/v1/jobs", {}


def run_upload(n: int = N_PREDICTIONS, width: int = 200) -> dict:
    preds = [
        {"sample_id": f"s{i}", "prediction": "x" * width, "reward": 0.5, "components": {"f1": 0.5}}
        for i in range(n)
    ]
    return {
        "key": "drain-run",
        "model": {"name": "m"},
        "suite": {"name": "s", "version": "1", "content_hash": "h"},
        "predictions": preds,
    }


def env_for(service: str, tmp: Path) -> dict[str, str]:
    if service == "embedding":
        model = tmp / "clip"
        build_tiny_encoder("clip", model, seed=0)
        return {
            "PRL_EMBEDDING_MODEL_DIR": str(model),
            "PRL_EMBEDDING_MAX_BATCH_SIZE": "1",
            "PRL_EMBEDDING_MAX_DELAY_MS": "0",
        }
    if service == "leaderboard":
        return {"PRL_LEADERBOARD_DATABASE_URL": f"sqlite:///{tmp / 'lb.db'}"}
    if service == "trainer":
        return {"PRL_DATABASE_URL": f"sqlite:///{tmp / 'tr.db'}", "PRL_TRAINER_RUNS_DIR": str(tmp)}
    return {"PRL_REWARD_MAX_SAMPLES": "20000"}


FACTORY = {
    "reward": "services.reward.app:create_app",
    "embedding": "services.embedding.app:create_app",
    "leaderboard": "services.leaderboard.app:create_app",
    "trainer": "trainer.service:create_app",
}


def in_flight(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=0.3).text
    return float(
        next(
            v
            for v in (line.split(" ") for line in text.splitlines())
            if v[0] == "prl_http_in_flight"
        )[1]
    )


def wait_in_flight(url: str, box: dict, timeout_s: float = 20.0) -> bool:
    """True once a request besides this scrape is in flight; False if it already finished.

    The reward service scores on its event loop, so while our request is scored a scrape
    cannot be answered at all: a scrape that times out means the (only) request is running.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and "response" not in box:
        try:
            if in_flight(url) >= 2:
                return True
        except httpx.TimeoutException:
            return "response" not in box
        time.sleep(0.02)
    return False


def send_in_thread(url: str, method: str, path: str, body: dict) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def go() -> None:
        try:
            box["response"] = httpx.request(
                method,
                url + path,
                json=body or None,
                headers={"Authorization": f"Bearer {DEV_API_KEY}"},
                timeout=60,
            )
        except httpx.HTTPError as exc:
            box["error"] = exc

    t = threading.Thread(target=go)
    t.start()
    return t, box


def refused_or_draining(url: str, service: str) -> bool:
    """A new API request right after SIGTERM: 503 ``draining`` + ``Retry-After`` +
    ``Connection: close`` during the drain delay, refused once the listener is closed.
    (``/healthz`` keeps answering 200 while draining: the process is alive.)"""
    method, path, body = PROBE[service]
    try:
        r = httpx.request(
            method,
            url + path,
            json=body,
            headers={"Authorization": f"Bearer {DEV_API_KEY}"},
            timeout=2,
        )
    except httpx.HTTPError:
        return True
    return (
        r.status_code == 503
        and "retry-after" in r.headers
        and r.headers.get("connection") == "close"
        and r.json()["error"]["code"] == "draining"
    )


@pytest.mark.slow
@pytest.mark.parametrize("service", sorted(APPS))
def test_sigterm_drains_in_flight_work_under_uvicorn(service, tmp_path):
    env = env_for(service, tmp_path)
    method, path, body = slow_request(service)
    with uvicorn_process(FACTORY[service], env, drain_s=20) as (proc, url):
        t, box = send_in_thread(url, method, path, body)
        if service == "trainer":  # no slow route: a served request, then a clean exit
            t.join(30)
        else:
            assert wait_in_flight(url, box), f"the slow request finished before SIGTERM: {box}"
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert refused_or_draining(url, service), "a new request was served after SIGTERM"
        t.join(60)
        code = proc.wait(30)
    assert code in (0, -signal.SIGTERM), code
    assert "error" not in box, box.get("error")
    assert box["response"].status_code in (200, 201), box["response"].text[:300]
    if service == "leaderboard":
        assert box["response"].json()["predictions_total"] == N_PREDICTIONS
        assert stored_predictions(tmp_path / "lb.db") == N_PREDICTIONS  # landed in full


def stored_predictions(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        runs = conn.execute("SELECT id FROM runs WHERE key = 'drain-run'").fetchall()
        n = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
    assert len(runs) == (1 if n else 0), (runs, n)  # no run without its predictions
    return n


@pytest.mark.slow
def test_sigkill_mid_upload_leaves_all_or_nothing(tmp_path):
    env = env_for("leaderboard", tmp_path)
    with uvicorn_process(FACTORY["leaderboard"], env) as (proc, url):
        # The largest upload (bulk inserts store 8000 rows in well under 0.5 s now).
        t, box = send_in_thread(url, "POST", "/v1/runs", run_upload(100_000, 40))
        assert wait_in_flight(url, box)
        time.sleep(1.0)  # past parsing and validation, into the transaction
        proc.send_signal(signal.SIGKILL)
        t.join(60)
        proc.wait(10)
    assert "error" in box  # the client saw the connection die
    assert stored_predictions(tmp_path / "lb.db") in (0, 100_000)
