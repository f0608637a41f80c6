"""Client SDK cost and the verl adapter's request coalescing, against a live reward service.

    python benchmarks/client_sdk.py [--repeats 5]

Starts ``prl serve reward`` on a free port, then measures (medians over ``--repeats``):

(a) one ``/v1/score/groups`` request of 64 groups × 8 completions (``dig``) sent with raw
    httpx (body pre-encoded) vs ``RewardClient.score_groups`` (validation, encoding, typed
    parsing): completions/s and the SDK's extra milliseconds per request;
(b) 256 concurrent verl ``compute_score`` calls (one per sample, as verl's Reward Loop makes
    them) without coalescing (256 requests) and with ``coalesce_ms=5`` (a few requests):
    samples/s;
(c) OpenRLHF at 64 concurrent callers, one sample per call as its ``SingleTurnAgentExecutor``
    makes them: ``POST /get_reward`` with a VLM-style query (shared keep-alive client) vs the
    adapter file's ``reward_func`` called from 64 threads (``asyncio.to_thread``, as OpenRLHF
    calls it): samples/s and their ratio (target ≥ 0.8).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from clients.adapters import openrlhf as openrlhf_adapter
from clients.adapters import verl as verl_adapter
from clients.reward import RewardClient

SOL = {"boxes": [[10.0 + 30 * k, 10.0, 35.0 + 30 * k, 40.0] for k in range(5)]}


def completion(rng: random.Random) -> str:
    boxes = [[round(c + rng.uniform(-3, 3), 1) for c in b] for b in SOL["boxes"]]
    rng.shuffle(boxes)
    return f"<think>five changes</think> <answer>{json.dumps(boxes)}</answer>"


def start() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "services.cli", "serve", "reward", "--port", str(port)]
    env = {**os.environ, "PRL_REWARD_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("reward service did not start")


def bench_groups(url: str, repeats: int) -> dict[str, float]:
    rng = random.Random(0)
    groups = [
        {"id": f"g{i}", "solution": SOL, "completions": [completion(rng) for _ in range(8)]}
        for i in range(64)
    ]
    body = json.dumps({"reward": "dig", "advantage": "grpo", "groups": groups}).encode()
    raw, sdk = [], []
    with httpx.Client(base_url=url, timeout=60) as http, RewardClient(url) as rc:
        rc.score_groups(groups, reward="dig")  # warm-up (limits discovery, connections)
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = http.post(
                "/v1/score/groups", content=body, headers={"content-type": "application/json"}
            )
            r.json()
            raw.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rc.score_groups(groups, reward="dig")
            sdk.append(time.perf_counter() - t0)
    n = 64 * 8
    return {
        "groups_raw_httpx_completions_per_s": n / statistics.median(raw),
        "groups_sdk_completions_per_s": n / statistics.median(sdk),
        "sdk_overhead_ms_per_request": 1000 * (statistics.median(sdk) - statistics.median(raw)),
    }


async def verl_batch(url: str, coalesce_ms: float, n: int) -> float:
    rng = random.Random(1)
    texts = [completion(rng) for _ in range(n)]
    kw = {"url": url, "coalesce_ms": coalesce_ms, "components": ["format", "f1", "miou"]}
    t0 = time.perf_counter()
    out = await asyncio.gather(
        *(
            verl_adapter.compute_score(
                data_source="dig", solution_str=t, ground_truth=SOL, extra_info={}, **kw
            )
            for t in texts
        )
    )
    dt = time.perf_counter() - t0
    assert all(o["prl_fallback"] == 0.0 for o in out)
    return n / dt


def bench_verl(url: str, repeats: int) -> dict[str, float]:
    out = {}
    for ms in (0.0, 5.0):
        asyncio.run(verl_batch(url, ms, 32))  # warm-up
        rates = [asyncio.run(verl_batch(url, ms, 256)) for _ in range(repeats)]
        out[f"verl_per_sample_coalesce_{int(ms)}ms_samples_per_s"] = statistics.median(rates)
    return out


PROMPT = (
    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Box every difference."
    "<|im_end|>\n<|im_start|>assistant\n"
)


def openrlhf_samples(n: int) -> list[tuple[str, str, dict]]:
    """(query, prompt, label) triples: the query's image pad expanded to 64 vision tokens."""
    rng = random.Random(2)
    query_head = PROMPT.replace("<|image_pad|>", "<|image_pad|>" * 64)
    return [(query_head + completion(rng) + "<|im_end|>", PROMPT, SOL) for _ in range(n)]


async def get_reward_rate(url: str, samples: list[tuple[str, str, dict]], callers: int) -> float:
    gate = asyncio.Semaphore(callers)
    limits = httpx.Limits(max_connections=callers, max_keepalive_connections=callers)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def one(q: str, p: str, label: dict) -> None:
            async with gate:
                r = await http.post(
                    "/get_reward", json={"query": [q], "prompts": [p], "labels": [label]}
                )
                assert r.json()["extra_logs"]["prl_error"] == [0.0]

        t0 = time.perf_counter()
        await asyncio.gather(*(one(*s) for s in samples))
        return len(samples) / (time.perf_counter() - t0)


def reward_file_rate(samples: list[tuple[str, str, dict]], callers: int) -> float:
    with ThreadPoolExecutor(callers) as pool:
        t0 = time.perf_counter()
        outs = list(
            pool.map(lambda s: openrlhf_adapter.reward_func([s[0]], [s[1]], [s[2]]), samples)
        )
        dt = time.perf_counter() - t0
    assert all(o["extra_logs"]["prl_fallback"] == [0.0] for o in outs)
    return len(samples) / dt


def bench_openrlhf(url: str, repeats: int, callers: int = 64, n: int = 512) -> dict[str, float]:
    os.environ.update({"PRL_REWARD_URL": url, "PRL_REWARD_PRESET": "dig"})
    samples = openrlhf_samples(n)
    asyncio.run(get_reward_rate(url, samples[:64], callers))  # warm-up
    reward_file_rate(samples[:64], callers)
    http_rates, file_rates = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        http_rates.append(asyncio.run(get_reward_rate(url, samples, callers)))
        file_rates.append(reward_file_rate(samples, callers))
    http, file = statistics.median(http_rates), statistics.median(file_rates)
    return {
        "openrlhf_get_reward_samples_per_s": http,
        "openrlhf_reward_file_samples_per_s": file,
        "openrlhf_file_over_get_reward": file / http,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    proc, url = start()
    try:
        result = {"benchmark": "client_sdk", **bench_groups(url, args.repeats)}
        result.update(bench_verl(url, args.repeats))
        result.update(bench_openrlhf(url, args.repeats))
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
