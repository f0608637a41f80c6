"""A fault-injecting fake of the reward/leaderboard wire contract (served in a background
thread with :func:`services.stack.serve_in_thread`), plus helpers to run the real services as
subprocesses.

The fake scores ``reward = 1`` when the completion contains ``<answer>`` (component
``format``), else 0; its faults are queued per path: each request to the path pops the next
:class:`Fault` (status, headers, delay) before normal handling.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from schemas.reward import GroupsRequest, ScoreRequest
from services.stack import StackError, free_port, wait_ready


@dataclass
class Fault:
    status: int = 503
    retry_after: str | None = None
    delay_s: float = 0.0
    code: str = "injected"
    request_id_in_body: str | None = None


@dataclass
class FakeState:
    faults: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    log: list[dict[str, Any]] = field(default_factory=list)
    limits: dict[str, int] | None = None
    max_body_bytes: int | None = None
    delay_s: float = 0.0
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def inject(self, path: str, *faults: Fault) -> None:
        self.faults[path].extend(faults)

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [c for c in self.log if c["path"] == path]


def fake_reward(completion: str) -> float:
    return 1.0 if "<answer>" in completion else 0.0


def _error(status: int, code: str, message: str, rid: str, headers: dict | None = None):
    body = {"error": {"code": code, "message": message, "request_id": rid}}
    return JSONResponse(body, status, headers={"x-request-id": rid, **(headers or {})})


def build_fake_app(state: FakeState) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def faults(request: Request, call_next):
        rid = request.headers.get("x-request-id", "server-made-id")
        body = await request.body()
        state.log.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        queue = state.faults.get(request.url.path)
        fault = queue.popleft() if queue else None
        delay = fault.delay_s if fault else state.delay_s
        if delay:
            await asyncio.sleep(delay)
        if fault and fault.status:
            headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
            body_rid = fault.request_id_in_body or rid
            resp = _error(fault.status, fault.code, f"injected {fault.status}", body_rid, headers)
            if fault.request_id_in_body:
                del resp.headers["x-request-id"]
            return resp
        if state.max_body_bytes is not None and len(body) > state.max_body_bytes:
            return _error(413, "body_too_large", f"{len(body)} bytes", rid)
        response = await call_next(request)
        response.headers["x-request-id"] = rid
        return response

    @app.get("/v1/limits")
    async def limits():
        if state.limits is None:
            return _error(404, "not_found", "no limits", "x")
        return state.limits

    @app.post("/v1/score")
    async def score(req: ScoreRequest, request: Request):
        cap = (state.limits or {}).get("max_samples")
        if cap is not None and len(req.samples) > cap:
            return _error(413, "too_many", f"{len(req.samples)} > {cap}", "x")
        spec = {"components": [{"name": "format"}], "aggregate": {"method": "mean"}}
        results = [
            {
                "id": s.id,
                "reward": fake_reward(s.completion),
                "components": {"format": fake_reward(s.completion)},
                "error": None,
            }
            for s in req.samples
        ]
        return {"results": results, "reward": spec}

    @app.post("/v1/score/groups")
    async def groups(req: GroupsRequest):
        cap = (state.limits or {}).get("max_samples")
        total = sum(len(g.completions) for g in req.groups)
        if cap is not None and total > cap:
            return _error(413, "too_many", f"{total} completions > {cap}", "x")
        spec = {"components": [{"name": "format"}], "aggregate": {"method": "mean"}}
        out, allr = [], []
        for g in req.groups:
            r = [fake_reward(c) for c in g.completions]
            m = sum(r) / len(r)
            sd = math.sqrt(sum((x - m) ** 2 for x in r) / (len(r) - 1)) if len(r) > 1 else 0.0
            out.append(
                {
                    "id": g.id,
                    "rewards": r,
                    "advantages": [(x - m) / (sd + 1e-4) for x in r],
                    "components": {"format": r},
                    "errors": [None] * len(r),
                    "std": sd,
                    "zero_variance": sd == 0.0,
                }
            )
            allr += r
        n = len(allr)
        mean = sum(allr) / n if n else 0.0
        stats = {
            "n_groups": len(out),
            "n_completions": n,
            "reward_mean": mean,
            "reward_std": math.sqrt(sum((x - mean) ** 2 for x in allr) / (n - 1)) if n > 1 else 0.0,
            "mean_group_std": sum(g["std"] for g in out) / len(out) if out else 0.0,
            "zero_variance_fraction": sum(g["zero_variance"] for g in out) / len(out)
            if out
            else 0.0,
            "error_fraction": 0.0,
        }
        return {"groups": out, "stats": stats, "reward": spec}

    @app.get("/v1/rewards")
    async def rewards():
        spec = {"components": [{"name": "format"}, {"name": "f1"}], "aggregate": {"method": "sum"}}
        preset = {"name": "dig", "reproduces": "x", "deviations": "y", "spec": spec}
        return {"components": [], "aggregators": [], "advantages": [], "presets": [preset]}

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    return app


def start_service(name: str, env: dict[str, str] | None = None, timeout: float = 60.0):
    """``prl serve <name> --port P`` as a subprocess; returns (process, url) once /readyz is 200."""
    port = free_port()
    cmd = [sys.executable, "-m", "services.cli", "serve", name, "--port", str(port)]
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=proc, timeout_s=timeout)
    except StackError:
        proc.kill()
        raise
    return proc, url


def stop_service(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
