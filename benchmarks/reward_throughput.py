"""Reward scoring throughput: in-process vs HTTP (batched groups) vs HTTP (one per completion).

    python benchmarks/reward_throughput.py [--seconds 6] [--port 0]

Workload: detection completions with 10 GT and 10 predicted boxes (jittered GT boxes in
shuffled order, one replaced by a false positive), preset ``dig`` (format + F1 + mIoU after
Hungarian matching). Measured side by side in one run:

(a) in-process ``ascore_groups`` on 64 groups × 8 completions;
(b) the same request through HTTP to one uvicorn worker (``prl serve reward``), plus the
    latency of a request holding one group of 16 completions (p50 / p99);
(c) one ``/v1/score`` request per completion (how OpenRLHF's remote RM calls);
plus the cost of encoding the 512-completion response with pydantic (FastAPI's path) and
with orjson. Prints one JSON object. Targets: (a) ≥ 20,000/s, (b) ≥ 10,000/s and ≥ 0.9 of
(a) per CPU-second of the scoring process, p99 < 20 ms.
Besides wall-clock rates it reports completions per CPU-second of the scoring process (the
in-process loop, or the uvicorn worker read from /proc), which stays meaningful when other
work shares the machine (``machine.loadavg_1m``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time

import httpx
import orjson

from services.stack import StackError, free_port, wait_ready

GT_BOXES, PRED_BOXES, GROUPS, GROUP_SIZE, W, H = 10, 10, 64, 8, 640, 480


def _box(rng: random.Random) -> list[float]:
    x, y = rng.uniform(0, W - 120), rng.uniform(0, H - 120)
    return [
        round(x, 1),
        round(y, 1),
        round(x + rng.uniform(20, 110), 1),
        round(y + rng.uniform(20, 110), 1),
    ]


def completion(rng: random.Random, gt: list[list[float]]) -> str:
    pred = [[round(v + rng.uniform(-6, 6)) for v in b] for b in gt[: PRED_BOXES - 1]] + [_box(rng)]
    rng.shuffle(pred)
    items = [{"bbox_2d": b, "label": "object"} for b in pred]
    return "<think>Scanning the image.</think>\n<answer>" + json.dumps(items) + "</answer>"


def group(rng: random.Random, gid: str, size: int) -> dict:
    gt = [_box(rng) for _ in range(GT_BOXES)]
    return {
        "id": gid,
        "solution": {"boxes": gt},
        "frame": {"coords": "pixel", "image_size": [W, H]},
        "completions": [completion(rng, gt) for _ in range(size)],
    }


def calibration_ms() -> float:
    """CPU ms of a fixed pure-Python loop (10⁶ additions), to compare machines and load."""
    t = time.process_time()
    x = 0
    for i in range(1_000_000):
        x += i
    return round((time.process_time() - t) * 1e3, 1)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def run_for(seconds: float, fn) -> tuple[int, float, list[float]]:  # type: ignore[no-untyped-def]
    """Call ``fn`` until ``seconds`` pass; (calls, elapsed, per-call latencies in ms)."""
    lat = []
    t0 = time.perf_counter()
    while True:
        t = time.perf_counter()
        fn()
        lat.append((time.perf_counter() - t) * 1e3)
        if time.perf_counter() - t0 >= seconds:
            return len(lat), time.perf_counter() - t0, lat


def in_process(body: dict, seconds: float) -> dict:
    from schemas.reward import GroupsRequest
    from services.reward.scoring import ascore_groups

    req = GroupsRequest.model_validate(body)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(ascore_groups(req))
    cpu0 = time.process_time()
    n, dt, lat = run_for(seconds, lambda: loop.run_until_complete(ascore_groups(req)))
    cpu = time.process_time() - cpu0
    per = GROUPS * GROUP_SIZE
    return {
        "completions_per_s": round(n * per / dt),
        "completions_per_cpu_s": round(n * per / cpu),
        "ms_per_request_p50": round(pct(lat, 50), 2),
    }


def encoders(body: dict, repeats: int = 30) -> dict:
    """Encode the 512-completion response: FastAPI's pydantic path vs orjson."""
    from pydantic import TypeAdapter

    from schemas.reward import GroupsRequest, GroupsResponse
    from services.reward.scoring import ascore_groups

    out = asyncio.run(ascore_groups(GroupsRequest.model_validate(body)))
    adapter = TypeAdapter(GroupsResponse)

    def best(fn) -> float:  # type: ignore[no-untyped-def]
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return round(min(times) * 1e3, 3)

    return {
        "pydantic_validate_and_dump_json_ms": best(
            lambda: adapter.dump_json(adapter.validate_python(out))
        ),
        "orjson_model_dump_ms": best(lambda: orjson.dumps(out.model_dump())),
    }


def start_server(port: int) -> subprocess.Popen:
    prl = shutil.which("prl")
    head = [prl] if prl else [sys.executable, "-m", "services.cli"]
    env = {**os.environ, "PRL_REWARD_LOG_LEVEL": "warning", "PRL_REWARD_WORKERS": "1"}
    # PYTHONPATH is kept: the server must run the same code as the in-process measurement
    proc = subprocess.Popen([*head, "serve", "reward", "--port", str(port)], env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc=proc, timeout_s=60)
    except StackError:
        proc.kill()
        raise
    return proc


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def http_runs(port: int, body: dict, seconds: float, rng: random.Random, pid: int) -> dict:
    base = f"http://127.0.0.1:{port}"
    headers = {"content-type": "application/json"}
    batched = orjson.dumps(body)
    g16 = orjson.dumps({"reward": "dig", "groups": [group(rng, "g16", 16)]})
    singles = [
        orjson.dumps(
            {
                "reward": "dig",
                "samples": [
                    {"id": "s", "completion": c, "solution": g["solution"], "frame": g["frame"]}
                ],
            }
        )
        for g in body["groups"][:8]
        for c in g["completions"]
    ]
    with httpx.Client(base_url=base, timeout=30) as client:

        def post(url: str, content: bytes) -> None:
            r = client.post(url, content=content, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")

        for _ in range(3):
            post("/v1/score/groups", batched)
        cpu0 = cpu_seconds(pid)
        n, dt, lat = run_for(seconds, lambda: post("/v1/score/groups", batched))
        cpu1 = cpu_seconds(pid)
        server_cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
        b = {
            "completions_per_s": round(n * GROUPS * GROUP_SIZE / dt),
            "completions_per_server_cpu_s": (
                round(n * GROUPS * GROUP_SIZE / server_cpu) if server_cpu else None
            ),
            "requests": n,
            "latency_ms_p50": round(pct(lat, 50), 2),
            "latency_ms_p99": round(pct(lat, 99), 2),
        }
        for _ in range(20):
            post("/v1/score/groups", g16)
        _, _, lat16 = run_for(seconds / 2, lambda: post("/v1/score/groups", g16))
        g = {
            "requests": len(lat16),
            "latency_ms_p50": round(pct(lat16, 50), 2),
            "latency_ms_p99": round(pct(lat16, 99), 2),
        }
        it = iter(range(10**9))
        n, dt, lat1 = run_for(
            seconds / 2, lambda: post("/v1/score", singles[next(it) % len(singles)])
        )
        c = {
            "completions_per_s": round(n / dt),
            "latency_ms_p50": round(pct(lat1, 50), 2),
            "latency_ms_p99": round(pct(lat1, 99), 2),
        }
    return {"b": b, "group16": g, "c": c}


def main() -> None:
    parser = argparse.ArgumentParser(description="reward service throughput")
    parser.add_argument("--seconds", type=float, default=6.0, help="per measured phase")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    args = parser.parse_args()
    rng = random.Random(0)
    body = {
        "reward": "dig",
        "advantage": "grpo",
        "groups": [group(rng, f"g{i}", GROUP_SIZE) for i in range(GROUPS)],
    }
    t0 = time.perf_counter()
    calib = calibration_ms()
    a = in_process(body, args.seconds)
    enc = encoders(body)
    port = args.port or free_port()
    proc = start_server(port)
    try:
        h = http_runs(port, body, args.seconds, rng, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    b, g16, c = h["b"], h["group16"], h["c"]
    result = {
        "workload": {
            "preset": "dig",
            "gt_boxes": GT_BOXES,
            "pred_boxes": PRED_BOXES,
            "groups": GROUPS,
            "group_size": GROUP_SIZE,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "python_loop_1e6_cpu_ms": calib,
        },
        "a_in_process": a,
        "b_http_batched_groups": b,
        "b_http_group16": g16,
        "c_http_one_per_completion": c,
        "ratios": {
            "b_over_a": round(b["completions_per_s"] / a["completions_per_s"], 3),
            "b_over_c": round(b["completions_per_s"] / c["completions_per_s"], 2),
            "b_over_a_per_cpu_s": (
                round(b["completions_per_server_cpu_s"] / a["completions_per_cpu_s"], 3)
                if b["completions_per_server_cpu_s"]
                else None
            ),
        },
        "response_encoding_512": enc,
        "targets_met": {
            "a_ge_20000_per_s": a["completions_per_s"] >= 20_000,
            "a_ge_20000_per_cpu_s": a["completions_per_cpu_s"] >= 20_000,
            "b_over_a_per_cpu_s_ge_0_9": bool(
                b["completions_per_server_cpu_s"]
                and b["completions_per_server_cpu_s"] >= 0.9 * a["completions_per_cpu_s"]
            ),
            "b_ge_10000_per_s": b["completions_per_s"] >= 10_000,
            "group16_p99_lt_20_ms": g16["latency_ms_p99"] < 20.0,
        },
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
