"""COCO bbox mAP: our engine (``services.benchmark.metrics.coco_engine``) vs pycocotools.

Both run in one process on the same seeded synthetic set (default 500 images × 100
detections = 50 k detections, shaped like COCO val: docs/metrics.md), alternating order each repetition.
Timed: everything from the in-memory dicts to the 12 stats (pycocotools: ``COCO`` index +
``loadRes`` + evaluate/accumulate/summarize; ours: ``coco_evaluate``). Prints one JSON object:
max |Δ| over the 12 stats and over the precision array, median wall/CPU seconds and the
speed ratio. Time is bounded: repetitions stop once ``--max-seconds`` is spent (at least one).

    python benchmarks/coco_eval.py [--images 500] [--dets 100] [--reps 3] [--max-seconds 240]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import statistics
import time

import numpy as np

from services.benchmark.metrics.coco_engine import STAT_NAMES, coco_evaluate
from services.benchmark.synthetic import synthetic_coco


def run_pycocotools(gt: dict, dets: list) -> tuple[np.ndarray, np.ndarray]:
    """The reference, used the standard way (``loadRes`` on a copy: it mutates its input)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        cd = cg.loadRes(dets)
        ev = COCOeval(cg, cd, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:12]), ev.eval["precision"]


def run_ours(gt: dict, dets: list) -> tuple[np.ndarray, np.ndarray]:
    res = coco_evaluate(gt, dets, engine="faster")
    return np.asarray(res.stats), res.precision


def timed(fn, gt, dets):  # type: ignore[no-untyped-def]
    gt_c, dets_c = copy.deepcopy(gt), copy.deepcopy(dets)  # copies outside the timed region
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(gt_c, dets_c)
    return out, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--dets", type=int, default=100, help="detections per image")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=240.0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    gt, dets = synthetic_coco(args.images, dets_per_image=args.dets, seed=args.seed)
    gen_s = time.perf_counter() - t0
    times: dict[str, list[tuple[float, float]]] = {"ours": [], "pycocotools": []}
    max_stat, max_prec, stats = 0.0, 0.0, None
    start = time.perf_counter()
    for rep in range(args.reps):
        order = [("ours", run_ours), ("pycocotools", run_pycocotools)]
        results = {}
        for name, fn in order if rep % 2 == 0 else order[::-1]:
            out, wall, cpu = timed(fn, gt, dets)
            results[name] = out
            times[name].append((wall, cpu))
        max_stat = max(
            max_stat, float(np.abs(results["ours"][0] - results["pycocotools"][0]).max())
        )
        max_prec = max(
            max_prec, float(np.abs(results["ours"][1] - results["pycocotools"][1]).max())
        )
        stats = results["ours"][0]
        if time.perf_counter() - start > args.max_seconds:
            break

    def med(name: str, i: int) -> float:
        return statistics.median(t[i] for t in times[name])

    report = {
        "benchmark": "coco_eval_bbox",
        "images": args.images,
        "gt_boxes": len(gt["annotations"]),
        "detections": len(dets),
        "categories": len(gt["categories"]),
        "reps": len(times["ours"]),
        "generate_s": round(gen_s, 3),
        "ours_wall_s": round(med("ours", 0), 4),
        "pycocotools_wall_s": round(med("pycocotools", 0), 4),
        "ours_cpu_s": round(med("ours", 1), 4),
        "pycocotools_cpu_s": round(med("pycocotools", 1), 4),
        "speedup_wall": round(med("pycocotools", 0) / med("ours", 0), 2),
        "speedup_cpu": round(med("pycocotools", 1) / med("ours", 1), 2),
        "max_abs_diff_stats": max_stat,
        "max_abs_diff_precision": max_prec,
        "stats_identical_1e-9": max_stat <= 1e-9,
        "target_speedup": 4.0,
        "stats": dict(zip(STAT_NAMES, (round(float(s), 6) for s in stats), strict=True)),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
