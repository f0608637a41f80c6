"""DiG generation throughput: pairs per second for each renderer at 320×240.

Targets: raster ≥ 50 pairs/s on one core; blender (Workbench) ≥ 2 pairs/s.
Prints one JSON object. ``wall`` is elapsed time; ``cpu`` is this process's CPU time (the
one-core figure on a shared machine), plus the CPU time of finished child processes (the
blender worker, started and stopped inside each run, so its ~6 s GL start-up is included).

    OMP_NUM_THREADS=1 python benchmarks/dig_generation.py --n 200 [--blender-n 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _timed_generate(renderer: str, n: int, size: tuple[int, int], seed: int) -> dict:
    from tasks.dig import generate

    out = Path(tempfile.mkdtemp(prefix=f"dig-bench-{renderer}-"))
    try:
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall, cpu = time.perf_counter(), time.process_time()
        manifest = generate(
            out, n, renderer=renderer, seed=seed, split="all", size=size, progress=False
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu = (after.ru_utime + after.ru_stime) - (child.ru_utime + child.ru_stime)
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        attempts = sum(r["attempt"] + 1 for r in rows)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "n": n,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "pairs_per_s_wall": round(n / wall, 2),
        "pairs_per_s_cpu": round(n / (cpu + child_cpu), 2) if cpu + child_cpu > 0 else None,
        "worker_cpu_s": round(child_cpu, 3),
        "draws_per_pair": round(attempts / max(n, 1), 3),
    }


def _stage_breakdown(n: int, size: tuple[int, int], seed: int) -> dict:
    """CPU ms per pair of: drawing scenes, rendering, checking, PNG encoding (means), and the
    median / 10th percentile of the per-pair total, which a loaded machine inflates less than
    the mean (``pairs_per_s_p50`` = 1000 / median)."""
    from tasks.dig.generate import check_pair, draw_pair, png_bytes
    from tasks.dig.raster import RasterRenderer

    renderer = RasterRenderer(size=size)
    t = dict.fromkeys(("draw", "render", "check", "png"), 0.0)
    totals = []
    for i in range(n):
        start = c = time.process_time()
        spec = draw_pair(seed, "mixed", i, 0)
        t["draw"] += time.process_time() - c
        if spec is None:
            continue
        c = time.process_time()
        ra, rb = renderer.render_many([spec.scene_a, spec.scene_b])
        t["render"] += time.process_time() - c
        c = time.process_time()
        check_pair(spec, ra, rb)
        t["check"] += time.process_time() - c
        c = time.process_time()
        png_bytes(ra.image), png_bytes(rb.image)
        t["png"] += time.process_time() - c
        totals.append(time.process_time() - start)
    p50, p10 = (float(np.percentile(totals, q)) * 1000 for q in (50, 10))
    return {k: round(v / n * 1000, 3) for k, v in t.items()} | {
        "total_p50_ms": round(p50, 3),
        "total_p10_ms": round(p10, 3),
        "pairs_per_s_p50": round(1000 / p50, 1),
        "unit": "ms per pair (cpu)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="raster pairs")
    parser.add_argument("--blender-n", type=int, default=0, help="blender pairs (0: skip)")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = (args.width, args.height)
    result: dict = {"size": list(size), "load_avg_1m": round(os.getloadavg()[0], 2)}
    _timed_generate("raster", 3, size, args.seed + 1)  # warm-up (imports, caches)
    result["raster"] = _timed_generate("raster", args.n, size, args.seed)
    result["raster"]["target_pairs_per_s"] = 50
    result["raster_breakdown"] = _stage_breakdown(min(args.n, 100), size, args.seed)
    if args.blender_n:
        from tasks.dig.blender import blender_available

        ok, why = blender_available()
        if ok:
            result["blender"] = _timed_generate("blender", args.blender_n, size, args.seed)
            result["blender"]["target_pairs_per_s"] = 2
        else:
            result["blender"] = {"skipped": why}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
