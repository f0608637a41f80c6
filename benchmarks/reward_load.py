"""Load test of the reward service on loopback (issue: reliability).

For each worker count (1, 2) a real ``prl serve reward --workers W`` is started; for each
concurrency (64, 256) that many async clients loop on ``POST /v1/score/groups`` (one group of
8 detection completions, 10 GT boxes) for ``--duration`` seconds (bounded also by
``--max-requests``). Every request's outcome is counted: 2xx, 503/429 *with* Retry-After
(the allowed answer above saturation), any other 4xx/5xx, and transport errors (a lost
response). A prober sends ``/healthz`` every 0.5 s alongside (``healthz_p50_ms``/``_max_ms``:
how long a liveness probe waits under load) and ``workers_replaced`` counts workers uvicorn's
supervisor replaced. Prints one JSON object per configuration and a summary line.

    python benchmarks/reward_load.py                 # 4 × 60 s
    python benchmarks/reward_load.py --duration 10   # quicker
    python benchmarks/reward_load.py --kill-worker   # also: kill -9 one of 2 workers mid-load
    python benchmarks/reward_load.py --workers '' --kill-worker   # only the kill scenario

In the kill scenario the busiest worker is killed at ``duration / 3`` and transport errors
are retried ``--kill-retries`` times (the SDK's default is 3), counted as
``transport_errors_retried``; ``--kill-worker-raw`` repeats it with clients that never retry
(each request in flight on the killed worker is then lost: no answer can come from a
process that died). ``--drain``: 2 workers, 64 raw clients (no retry), SIGTERM to uvicorn's
supervisor at ``duration / 3``; clients honour ``503 draining`` + ``Retry-After`` by
stopping (a load balancer would send them to another replica), and the run records how
soon ``/readyz`` turned 503, the server's exit code and every transport error ("lost").
``--server-log FILE`` keeps the servers' output. Each result also has ``load_1m`` (the
machine's load average) and ``client_cpu_s``: the figures are from a shared machine.

    python benchmarks/reward_load.py --workers '' --kill-worker --kill-worker-raw --drain
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.stack import StackError, free_port, wait_ready  # noqa: E402


def detection_group(rng: random.Random, gid: int) -> dict:
    gt = []
    for _ in range(10):
        x, y = rng.uniform(0, 500), rng.uniform(0, 350)
        gt.append([x, y, x + rng.uniform(10, 120), y + rng.uniform(10, 120)])
    completions = []
    for _ in range(8):
        boxes = [[c + rng.uniform(-8, 8) for c in b] for b in gt]
        answer = json.dumps([{"bbox_2d": [round(v, 1) for v in b], "label": "obj"} for b in boxes])
        completions.append(f"<think>looking</think><answer>{answer}</answer>")
    return {
        "id": f"g{gid}",
        "solution": {"boxes": gt},
        "frame": {"coords": "pixel", "image_size": [640, 480]},
        "completions": completions,
    }


def start_server(
    workers: int, max_concurrency: int, log_path: str | None = None, drain_delay_s: float = 1.0
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "PRL_REWARD_MAX_CONCURRENCY": str(max_concurrency),
        "PRL_REWARD_LOG_LEVEL": "warning",
        "PRL_REWARD_DRAIN_DELAY_S": str(drain_delay_s),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "serve",
            "reward",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=env,
        stdout=open(log_path, "ab") if log_path else subprocess.DEVNULL,  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=proc, timeout_s=60)
    except StackError:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):  # leftover workers, if any
            os.killpg(proc.pid, signal.SIGKILL)
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def worker_pids(master: int) -> list[int]:
    """uvicorn's worker processes (spawned children; not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{master}/task/{master}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    out = []
    for pid in pids:
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            continue
    return out


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (clock ticks), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


async def load(
    url: str,
    concurrency: int,
    duration: float,
    max_requests: int,
    kill_master: int | None,
    retries: int = 0,
    drain_master: int | None = None,
) -> dict:
    """Run the clients; a transport error is retried up to ``retries`` times (as the SDK
    does for connection errors) and counted as ``transport_retried``; a request whose last
    attempt still fails is lost.

    ``drain_master``: SIGTERM that process (uvicorn's supervisor) at ``duration / 3``. A
    client that then gets ``503 draining`` + ``Retry-After`` honours it the way a client
    behind a load balancer would: this replica is going away, so it stops sending here
    (counted as ``503+retry_after:draining``). ``Connection: close`` is honoured by httpx
    itself. ``/readyz`` is polled every 20 ms from the signal on: ``readyz_503_after_s``.
    """
    rng = random.Random(0)
    bodies = [
        json.dumps(
            {"reward": "dig", "advantage": "grpo", "groups": [detection_group(rng, i)]}
        ).encode()
        for i in range(32)
    ]
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    sent = 0
    stop_at = time.monotonic() + duration
    killed: dict = {}

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.monotonic() < stop_at and sent < max_requests:
            sent += 1
            t0 = time.perf_counter()
            body = bodies[sent % len(bodies)]
            r = None
            for attempt in range(retries + 1):
                try:
                    r = await http.post(
                        "/v1/score/groups",
                        content=body,
                        headers={"content-type": "application/json"},
                    )
                    break
                except httpx.HTTPError as err:
                    if attempt == retries:
                        outcomes[f"transport:{type(err).__name__}"] += 1
                    else:
                        outcomes["transport_retried"] += 1
                        await asyncio.sleep(0.1 * 2**attempt)
            if r is None:
                continue
            latencies.append(time.perf_counter() - t0)
            if r.status_code == 200:
                outcomes["ok"] += 1
            elif drain_master and r.status_code == 503 and "retry-after" in r.headers:
                code = r.json()["error"]["code"]
                outcomes[f"503+retry_after:{code}"] += 1
                if code == "draining":
                    return  # go elsewhere: this replica is shutting down
                await asyncio.sleep(float(r.headers["retry-after"]) * random.random())
            elif r.status_code in (429, 503) and "retry-after" in r.headers:
                outcomes[f"{r.status_code}+retry_after"] += 1
                await asyncio.sleep(float(r.headers["retry-after"]) * random.random())
            else:
                outcomes[f"http_{r.status_code}"] += 1

    async def killer() -> None:
        await asyncio.sleep(duration / 3)
        pids = worker_pids(kill_master) if kill_master else []
        if pids:  # the busiest worker: it holds the connections with requests in flight
            victim = max(pids, key=cpu_ticks)
            os.kill(victim, signal.SIGKILL)
            killed["pid"] = victim

    async def drainer() -> None:
        """SIGTERM the supervisor, then watch readiness turn 503 and the process exit."""
        await asyncio.sleep(duration / 3)
        assert drain_master is not None
        t_sig = time.monotonic()
        os.kill(drain_master, signal.SIGTERM)
        killed["sigterm_at_s"] = round(t_sig - t0, 2)
        async with httpx.AsyncClient(base_url=url, timeout=5.0) as ready_http:
            while time.monotonic() - t_sig < 10:
                try:
                    code = (await ready_http.get("/readyz")).status_code
                except httpx.HTTPError:
                    break  # listener closed
                if code == 503:
                    killed["readyz_503_after_s"] = round(time.monotonic() - t_sig, 3)
                    break
                await asyncio.sleep(0.02)

    probes: list[float] = []

    async def prober() -> None:
        """``/healthz`` latency every 0.5 s on its own connection: how long a liveness probe
        waits while the workers score (a probe that waits is an event loop that is busy)."""
        async with httpx.AsyncClient(base_url=url, timeout=60.0) as probe_http:
            while (
                time.monotonic() < stop_at and sent < max_requests and "sigterm_at_s" not in killed
            ):
                t = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    await probe_http.get("/healthz")
                    probes.append(time.perf_counter() - t)
                await asyncio.sleep(0.5)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    t0 = time.monotonic()
    cpu0 = os.times()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as http:
        tasks = [client(i, http) for i in range(concurrency)] + [prober()]
        if kill_master:
            tasks.append(killer())
        if drain_master:
            tasks.append(drainer())
        await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t0
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    answered = sum(v for k, v in outcomes.items() if not k.startswith("transport"))
    retried = outcomes.pop("transport_retried", 0)
    server_errors = sum(v for k, v in outcomes.items() if k.startswith("http_5"))
    return {
        "requests": sent,
        "answered": answered,
        "lost": sent - answered,
        "elapsed_s": round(elapsed, 2),
        "ok_per_s": round(outcomes["ok"] / elapsed, 1),
        "completions_per_s": round(outcomes["ok"] * 8 / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 2),
        "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 2),
        "server_errors_5xx_without_retry_after": server_errors,
        "healthz_p50_ms": round(float(np.percentile(probes, 50)) * 1e3, 1) if probes else None,
        "healthz_max_ms": round(max(probes) * 1e3, 1) if probes else None,
        "outcomes": dict(outcomes),
        "transport_errors_retried": retried,
        "load_1m": round(os.getloadavg()[0], 2),
        "client_cpu_s": round(sum(os.times()[:2]) - sum(cpu0[:2]), 1),
        **killed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--max-requests", type=int, default=200_000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--concurrency", default="64,256")
    ap.add_argument(
        "--server-max-concurrency", type=int, default=128, help="per worker, before fast 503"
    )
    ap.add_argument("--kill-worker", action="store_true", help="kill -9 a worker; clients retry")
    ap.add_argument(
        "--kill-worker-raw",
        action="store_true",
        help="the same with raw clients that never retry (what a kill costs them)",
    )
    ap.add_argument(
        "--drain", action="store_true", help="SIGTERM the 2-worker supervisor under load"
    )
    ap.add_argument("--drain-delay", type=float, default=1.0, help="PRL_REWARD_DRAIN_DELAY_S")
    ap.add_argument("--server-log", default=None, help="append the servers' output to this file")
    ap.add_argument(
        "--kill-retries",
        type=int,
        default=3,
        help="kill scenario: retries of a transport error (the SDK's default is 3)",
    )
    args = ap.parse_args()
    results = []
    for w in (int(x) for x in args.workers.split(",") if x):  # --workers '' : kill run only
        for c in (int(x) for x in args.concurrency.split(",")):
            proc, url = start_server(w, args.server_max_concurrency, args.server_log)
            pids = set(worker_pids(proc.pid))
            try:
                res = asyncio.run(load(url, c, args.duration, args.max_requests, None))
                # workers the supervisor replaced (it kills one that misses its 5 s health ping)
                res["workers_replaced"] = len(pids - set(worker_pids(proc.pid)))
            finally:
                stop_server(proc)
            res.update(workers=w, concurrency=c, server_max_concurrency=args.server_max_concurrency)
            print(json.dumps(res), flush=True)
            results.append(res)
    kills = []
    if args.kill_worker:
        kills.append(args.kill_retries)
    if args.kill_worker_raw:
        kills.append(0)
    for retries in kills:
        proc, url = start_server(2, args.server_max_concurrency, args.server_log)
        try:
            res = asyncio.run(load(url, 64, args.duration, args.max_requests, proc.pid, retries))
        finally:
            stop_server(proc)
        res.update(
            workers=2,
            concurrency=64,
            scenario="kill -9 one worker at t=duration/3"
            + (" (raw clients, no retry)" if retries == 0 else ""),
            client_retries=retries,
        )
        print(json.dumps(res), flush=True)
        results.append(res)
    if args.drain:
        proc, url = start_server(
            2, args.server_max_concurrency, args.server_log, drain_delay_s=args.drain_delay
        )
        try:
            res = asyncio.run(
                load(url, 64, args.duration, args.max_requests, None, 0, drain_master=proc.pid)
            )
            t = time.monotonic()
            exit_code = proc.wait(60)
            res["server_exit_code"] = exit_code
            res["server_exit_after_clients_s"] = round(time.monotonic() - t, 2)
        finally:
            stop_server(proc)
        res.update(
            workers=2,
            concurrency=64,
            scenario="SIGTERM to the supervisor at t=duration/3 (raw clients, no retry)",
            client_retries=0,
            drain_delay_s=args.drain_delay,
        )
        print(json.dumps(res), flush=True)
        results.append(res)
    print(
        json.dumps(
            {
                "summary": {
                    "total_requests": sum(r["requests"] for r in results),
                    "total_lost": sum(r["lost"] for r in results),
                    "total_5xx_without_retry_after": sum(
                        r["server_errors_5xx_without_retry_after"] for r in results
                    ),
                }
            }
        )
    )


if __name__ == "__main__":
    main()
