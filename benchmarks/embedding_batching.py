"""Embedding service throughput: dynamic batching vs ``max_batch_size=1`` over real HTTP.

For each model (the tiny CLIP of the tests, and a CLIP with ViT-B/32 shapes and random
weights), two uvicorn servers are started one after the other (a subprocess each, the real
``services.embedding.app:create_app`` factory): batching (``max_batch_size=32``) and no
batching (``max_batch_size=1``). ``--concurrency`` clients each send one base64 PNG per
``POST /v1/embed`` in a loop for ``--seconds``. Reported per run: images/s, p50/p99 latency,
and for the ViT-B/32 shape the achieved GFLOP/s next to the in-process limit — a plain
batched ``model.get_image_features`` loop on preprocessed pixels in this process.

FLOPs of the ViT image tower (2 FLOPs per multiply-add; T = (S/P)² + 1 tokens, width d,
MLP width m, L layers): ``L·(2·T·4d² + 2·2·T·d·m + 2·2·T²·d) + 2·(T−1)·3P²·d + 2·d·proj``
(≈ 8.8 GFLOP per 224² image for ViT-B/32).

    python benchmarks/embedding_batching.py [--seconds 8] [--concurrency 32] [--models tiny,vit-b-32]

Also reported: the in-process speedup of batch 32 over batch 1 (the most batching can give
on this hardware) and the HTTP ceiling — the same server and batcher around an encoder that
does nothing — which bounds images/s whenever the model is cheaper than a request.

Prints one JSON object. OMP_NUM_THREADS (default 1 here) applies to servers and baseline alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx
import numpy as np

from services.stack import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]


def vit_image_flops(cfg: Any) -> float:
    """FLOPs of one image through the vision tower + projection (docstring formula)."""
    v = cfg.vision_config
    d, m, n_layers, p, s = (
        v.hidden_size,
        v.intermediate_size,
        v.num_hidden_layers,
        v.patch_size,
        v.image_size,
    )
    t = (s // p) ** 2 + 1
    per_layer = 2 * t * 4 * d * d + 2 * 2 * t * d * m + 2 * 2 * t * t * d
    proj = getattr(cfg, "projection_dim", d)
    return float(n_layers * per_layer + 2 * (t - 1) * 3 * p * p * d + 2 * d * proj)


class NoopEncoder:
    """Returns constant unit vectors at no cost: the HTTP-stack ceiling of the service."""

    model_id, dim = "noop", 16

    def encode_images(self, images: list[Any]) -> np.ndarray:
        return np.full((len(images), self.dim), 0.25, dtype=np.float32)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return np.full((len(texts), self.dim), 0.25, dtype=np.float32)


def noop_app() -> Any:
    """uvicorn factory: the real app and batcher around :class:`NoopEncoder`."""
    from services.embedding.app import create_app

    return create_app(encoder=NoopEncoder())


def start_server(
    model_dir: Path | None, max_batch_size: int, max_delay_ms: float, port: int
) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        PRL_EMBEDDING_MAX_BATCH_SIZE=str(max_batch_size),
        PRL_EMBEDDING_MAX_DELAY_MS=str(max_delay_ms),
        PRL_EMBEDDING_MAX_CONCURRENCY="1024",
        PYTHONPATH=str(ROOT),
    )
    env.pop("PRL_EMBEDDING_MODEL_DIR", None)
    if model_dir is not None:
        env["PRL_EMBEDDING_MODEL_DIR"] = str(model_dir)
    factory = (
        "services.embedding.app:create_app"
        if model_dir
        else "benchmarks.embedding_batching:noop_app"
    )
    cmd = [sys.executable, "-m", "uvicorn", "--factory", factory,
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


async def load(url: str, payloads: list[str], concurrency: int, seconds: float) -> dict[str, float]:
    """``concurrency`` closed-loop clients for ``seconds``; latency percentiles and images/s."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for k in range(3):  # warm up (first forwards are slow)
            r = await client.post("/v1/embed", json={"images": [payloads[k % len(payloads)]]})
            r.raise_for_status()
        t_end = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            k = w
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                r = await client.post("/v1/embed", json={"images": [payloads[k % len(payloads)]]})
                r.raise_for_status()
                latencies.append(time.perf_counter() - t0)
                k += concurrency

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies)
    return {
        "requests": len(lat),
        "images_per_s": len(lat) / wall,
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
    }


def run_server(
    model_dir: Path | None,
    batch: int,
    delay_ms: float,
    payloads: list[str],
    args: argparse.Namespace,
) -> dict[str, float]:
    port = free_port()
    proc = start_server(model_dir, batch, delay_ms, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=proc, timeout_s=120)
        return asyncio.run(load(url, payloads, args.concurrency, args.seconds))
    finally:
        proc.terminate()
        proc.wait(30)


def in_process_limit(model_dir: Path, batch: int, seconds: float) -> dict[str, float]:
    """Images/s of ``get_image_features`` on preprocessed pixels in batches of ``batch``."""
    import torch

    from services.embedding.encoders import Encoder

    enc = Encoder.load(model_dir, device="cpu")
    size = enc.model.config.vision_config.image_size
    pixels = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        enc.model.get_image_features(pixel_values=pixels)  # warm up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            enc.model.get_image_features(pixel_values=pixels)
            n += batch
        wall = time.perf_counter() - t0
    return {"images_per_s": n / wall, "batch": batch}


def payloads_for(size: int, n: int = 8) -> list[str]:
    from PIL import Image

    from services.embedding.images import encode_png

    rng = np.random.default_rng(0)
    return [
        encode_png(Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)))
        for _ in range(n)
    ]


def bench_model(shape: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoConfig

    from services.embedding.tiny import build_random_encoder

    model_dir = build_random_encoder("clip", workdir / shape, shape=shape, seed=0)  # type: ignore[arg-type]
    cfg = AutoConfig.from_pretrained(model_dir)
    payloads = payloads_for(cfg.vision_config.image_size if shape != "tiny" else 64)
    batched = run_server(model_dir, args.max_batch_size, args.max_delay_ms, payloads, args)
    single = run_server(model_dir, 1, 0.0, payloads, args)
    out: dict[str, Any] = {
        "batched": batched
        | {"max_batch_size": args.max_batch_size, "max_delay_ms": args.max_delay_ms},
        "unbatched": single | {"max_batch_size": 1},
        "speedup": batched["images_per_s"] / single["images_per_s"],
    }
    secs = min(args.seconds, 4.0)
    limit = in_process_limit(model_dir, args.max_batch_size, secs)
    limit1 = in_process_limit(model_dir, 1, secs)
    out["in_process"] = limit
    out["in_process_batch1"] = limit1
    out["in_process_batching_speedup"] = limit["images_per_s"] / limit1["images_per_s"]
    out["http_vs_in_process"] = batched["images_per_s"] / limit["images_per_s"]
    if shape != "tiny":
        flops = vit_image_flops(cfg)
        out["gflop_per_image"] = flops / 1e9
        for key in ("in_process", "in_process_batch1", "batched", "unbatched"):
            out[key]["gflop_per_s"] = out[key]["images_per_s"] * flops / 1e9
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="measurement time per run")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--max-delay-ms", type=float, default=5.0)
    ap.add_argument("--models", default="tiny,vit-b-32")
    args = ap.parse_args()
    t0 = time.time()
    result: dict[str, Any] = {
        "benchmark": "embedding_batching",
        "concurrency": args.concurrency,
        "seconds_per_run": args.seconds,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "models": {},
    }
    noop = run_server(None, args.max_batch_size, args.max_delay_ms, payloads_for(64), args)
    result["http_ceiling_noop_encoder"] = noop
    with tempfile.TemporaryDirectory(prefix="prl-embed-bench-") as tmp:
        for shape in args.models.split(","):
            result["models"][shape] = bench_model(shape, Path(tmp), args)
    result["total_s"] = time.time() - t0
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
