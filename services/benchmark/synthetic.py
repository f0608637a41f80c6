"""Seeded synthetic COCO detection sets for parity tests and the mAP benchmark.

Shaped like COCO val (docs/metrics.md, "Parity and speed"): non-contiguous category ids with skewed frequencies
(Dirichlet 0.7), images 480–640 × 360–640, 1 + Poisson(λ) GT boxes per image with
log-uniform sides (small, medium and large areas all present), ~1 % crowd; per image a fixed
number of detections: a jittered true positive for 85 % of non-crowd GT (score ~ Beta(5, 2)),
30 % of those duplicated, 8 % given a wrong class, the rest random false positives
(score ~ Beta(1.2, 6)). ``constant_score`` imitates a score-less MLLM (every score 1.0).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _box(rng: np.random.Generator, w: int, h: int) -> list[float]:
    bw = float(np.exp(rng.uniform(np.log(4), np.log(w * 0.9))))
    bh = float(np.exp(rng.uniform(np.log(4), np.log(h * 0.9))))
    x = float(rng.uniform(0, w - bw))
    y = float(rng.uniform(0, h - bh))
    return [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)]


def _jitter(rng: np.random.Generator, b: list[float], w: int, h: int) -> list[float]:
    x, y, bw, bh = b
    s = 0.12 * rng.standard_normal(4)
    nx = min(max(x + s[0] * bw, 0.0), w - 1.0)
    ny = min(max(y + s[1] * bh, 0.0), h - 1.0)
    nw = max(1.0, min(bw * float(np.exp(s[2])), w - nx))
    nh = max(1.0, min(bh * float(np.exp(s[3])), h - ny))
    return [round(nx, 2), round(ny, 2), round(nw, 2), round(nh, 2)]


def synthetic_coco(
    n_images: int,
    *,
    dets_per_image: int = 100,
    n_categories: int = 80,
    gt_lambda: float = 6.0,
    crowd_rate: float = 0.01,
    constant_score: bool = False,
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(gt_dataset, detections)`` in COCO format (bbox ``[x, y, w, h]``), deterministic in seed."""
    rng = np.random.default_rng(seed)
    cat_ids = sorted(
        int(c) for c in rng.choice(np.arange(1, 2 * n_categories + 1), n_categories, replace=False)
    )
    cdf = np.cumsum(rng.dirichlet(np.full(n_categories, 0.7)))

    def draw_cat() -> int:  # a category id with the skewed frequencies
        return cat_ids[min(int(np.searchsorted(cdf, rng.random(), side="right")), n_categories - 1)]

    images, anns, dets = [], [], []
    for img_id in range(1, n_images + 1):
        w, h = int(rng.integers(480, 641)), int(rng.integers(360, 641))
        images.append({"id": img_id, "width": w, "height": h, "file_name": f"{img_id}.jpg"})
        img_dets: list[dict[str, Any]] = []
        for _ in range(1 + int(rng.poisson(gt_lambda))):
            cat = draw_cat()
            b = _box(rng, w, h)
            crowd = int(rng.random() < crowd_rate)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": cat,
                    "bbox": b,
                    "area": b[2] * b[3],
                    "iscrowd": crowd,
                }
            )
            if crowd or rng.random() >= 0.85:
                continue
            copies = 2 if rng.random() < 0.3 else 1
            for _ in range(copies):
                c = cat_ids[int(rng.integers(n_categories))] if rng.random() < 0.08 else cat
                score = float(rng.beta(5, 2))
                img_dets.append(
                    {
                        "image_id": img_id,
                        "category_id": c,
                        "bbox": _jitter(rng, b, w, h),
                        "score": score,
                    }
                )
        img_dets = img_dets[:dets_per_image]
        while len(img_dets) < dets_per_image:
            c = draw_cat()
            img_dets.append(
                {
                    "image_id": img_id,
                    "category_id": c,
                    "bbox": _box(rng, w, h),
                    "score": float(rng.beta(1.2, 6)),
                }
            )
        dets.extend(img_dets)
    if constant_score:
        for d in dets:
            d["score"] = 1.0
    gt = {
        "images": images,
        "categories": [{"id": c, "name": f"class_{c}"} for c in cat_ids],
        "annotations": anns,
    }
    return gt, dets
