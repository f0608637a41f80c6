"""COCO few-shot task (Visual-RFT protocol, 0–1000 frame) → runner → coco_map / virft AP,
checked against pycocotools run directly on the same boxes in pixels."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from services.benchmark.adapters import get_adapter
from services.benchmark.runner import RunOptions, run_benchmark
from services.benchmark.scoring import InProcessScorer
from services.benchmark.store import MemoryRunStore
from services.benchmark.synthetic import synthetic_coco


def _pycocotools(gt: dict, dets: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:12]), ev.eval["precision"]


def test_fewshot_coco_run_equals_pycocotools(tmp_path: Path):
    from tasks.registry import get_task

    gt, dt = synthetic_coco(10, dets_per_image=12, n_categories=4, crowd_rate=0.0, seed=11)
    for d in dt:
        d["score"] = round(d["score"], 2)  # Visual-RFT asks for two decimals
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(gt))
    for img in gt["images"]:
        (tmp_path / img["file_name"]).write_bytes(b"")
    task = get_task("coco_fewshot", root=str(tmp_path), ann_file=str(ann))
    size = {i["id"]: (i["width"], i["height"]) for i in gt["images"]}
    names = {c["id"]: c["name"] for c in gt["categories"]}

    # the model's answer: each asked (image, category) gets that category's detections in
    # 0–1000 coordinates with their confidence; the reference maps them back the same way
    lines, ref_dets = [], []
    for s in task.samples():
        img, cid = s.meta["image_id"], s.meta["category_id"]
        w, h = size[img]
        items = []
        for d in (d for d in dt if d["image_id"] == img and d["category_id"] == cid):
            x, y, bw, bh = d["bbox"]
            n = [x / w * 1000, y / h * 1000, (x + bw) / w * 1000, (y + bh) / h * 1000]
            items.append({"Position": n, "Confidence": d["score"]})
            px = np.array(n) * np.array([w / 1000, h / 1000, w / 1000, h / 1000])
            ref_dets.append(
                {
                    "image_id": img,
                    "category_id": cid,
                    "bbox": [px[0], px[1], px[2] - px[0], px[3] - px[1]],
                    "score": d["score"],
                }
            )
        lines.append(
            {"id": s.id, "completion": f"<think>.</think> <answer>{json.dumps(items)}</answer>"}
        )
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps(x) + "\n" for x in lines))

    res = run_benchmark(
        task,
        get_adapter("predictions", path=str(preds)),
        store=MemoryRunStore(),
        scorer=InProcessScorer(),
        options=RunOptions(progress=False, n_boot=0),
    )
    got = {m.name: m.value for m in res.metrics}
    ref_stats, ref_prec = _pycocotools(gt, ref_dets)
    for name, value in zip(
        ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"),
        ref_stats,
        strict=True,
    ):
        assert got[f"coco/{name}"] == pytest.approx(value, abs=1e-9), name
    # Visual-RFT: mean over classes of mean(precision[:, :, k, 0, -1] > -1)
    per_class = []
    for k, cid in enumerate(sorted(names)):
        p = ref_prec[:, :, k, 0, -1]
        if not (p > -1).any():  # a category without GT has no AP and is left out
            assert f"virft/AP/{names[cid]}" not in got
            continue
        per_class.append(p[p > -1].mean())
        assert got[f"virft/AP/{names[cid]}"] == pytest.approx(per_class[-1], abs=1e-9)
    assert got["virft/mAP"] == pytest.approx(float(np.mean(per_class)), abs=1e-9)
    assert 0 < got["coco/AP"] < 1
