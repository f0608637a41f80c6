"""Read-side helpers behind the page's drill-down (pure functions over a ``Session``).

* :func:`reward_breakdown`: the run's reward spec resolved, with each component's weight and
  declared range ``[lo, hi]``, so a sample's raw component ``r_k`` can be shown next to its
  scaled value ``r̂_k = clip((r_k − lo) / (hi − lo), 0, 1)`` (what harmonic / geometric
  aggregation uses) and the aggregate traced back to its parts;
* :func:`sample_detail`: one stored sample with its GT and predicted boxes (original-image
  pixels), the Hungarian pairs ``(pred i, gt j, IoU, TP)`` with the default DiG cost
  (``5·L1 + 2·(1 − GIoU)``, τ = 0.5; docs/rewards.md) and how many images the sample has;
* :func:`sample_image`: the path of a sample's k-th image, only for runs made here (``source
  == "local"``) and only for image files (an uploaded run cannot make the service read a file);
* :func:`run_extras`: per run, every metric, the reward spec and the training job whose run
  directory holds the evaluated checkpoint (traced through the model's stored ``path``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.leaderboard import (
    BoxPair,
    ComponentRange,
    MetricView,
    RewardBreakdown,
    RunExtras,
    SampleDetail,
)
from services.leaderboard.queries import metric_view
from services.store.models import Metric, Prediction, Run, TrainingJob
from services.store.repository import NotFoundError, get_run

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}


def reward_breakdown(reward: Any) -> RewardBreakdown | None:
    """The resolved spec of a run config's ``reward`` entry (None when absent or unknown)."""
    if reward is None:
        return None
    from schemas.reward import RewardSpec
    from services.benchmark.reward_key import reward_key
    from services.reward.scoring.spec import SpecError, compiled

    try:
        ref = reward if isinstance(reward, str) else RewardSpec.model_validate(reward)
        c = compiled(ref)
    except (SpecError, ValueError):
        return None
    key = reward_key(ref)
    return RewardBreakdown(
        name=key.name,
        hash=key.hash,
        aggregate=c.spec.aggregate.method,
        aggregate_params=c.spec.aggregate.params,
        components=[
            ComponentRange(name=comp.name, weight=float(w), lo=float(lo), hi=float(hi))
            for (comp, _), w, lo, hi in zip(c.components, c.weights, c.lo, c.hi, strict=True)
        ],
    )


def _boxes(value: Any) -> list[list[float]]:
    out = []
    for b in value or []:
        box = b.get("box") if isinstance(b, dict) else b
        if isinstance(box, list | tuple) and len(box) == 4:
            out.append([float(x) for x in box])
    return out


def box_pairs(pred: list[list[float]], gt: list[list[float]], size: Any) -> list[BoxPair]:
    """Hungarian pairs of predicted and GT pixel boxes (the DiG/F1 matching, defaults)."""
    from services.reward.scoring.matching import hungarian

    if not pred or not gt:
        return []
    w, h = (float(size[0]), float(size[1])) if size else (1.0, 1.0)
    m = hungarian(np.array(pred), np.array(gt), (w, h))
    return [
        BoxPair(pred=i, gt=j, iou=float(v), tp=bool(t))
        for i, j, v, t in zip(m.rows, m.cols, m.iou, m.tp, strict=True)
    ]


def _prediction(session: Session, run_id: int, sample_id: str) -> Prediction:
    get_run(session, run_id)
    p = session.scalars(
        select(Prediction).where(Prediction.run_id == run_id, Prediction.sample_id == sample_id)
    ).one_or_none()
    if p is None:
        raise NotFoundError(f"run {run_id} has no sample {sample_id!r}")
    return p


def sample_detail(session: Session, run_id: int, sample_id: str) -> SampleDetail:
    p = _prediction(session, run_id, sample_id)
    extra = p.extra or {}
    solution = extra.get("solution") or {}
    frame = extra.get("frame") or {}
    size = frame.get("image_size") or (extra.get("meta") or {}).get("image_size")
    gt = _boxes(solution.get("boxes"))
    pred = _boxes(extra.get("boxes"))
    return SampleDetail(
        sample_id=p.sample_id,
        prediction=p.prediction,
        reward=p.reward,
        components=p.components or {},
        error=p.error,
        meta=extra.get("meta") or {},
        image_size=list(size) if size else None,
        gt_boxes=gt,
        pred_boxes=pred,
        pairs=box_pairs(pred, gt, size),
        n_images=len(extra.get("images") or []),
    )


def sample_image(session: Session, run_id: int, sample_id: str, index: int) -> Path:
    run = get_run(session, run_id)
    p = _prediction(session, run_id, sample_id)
    images = (p.extra or {}).get("images") or []
    if not 0 <= index < len(images):
        raise NotFoundError(f"sample {sample_id!r} has {len(images)} image(s), not #{index}")
    if run.source != "local":
        raise NotFoundError("images are served for runs made on this host only (not uploads)")
    path = Path(str(images[index]))
    if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        raise NotFoundError(f"image #{index} of sample {sample_id!r} is not on this host")
    return path


def _job_for(model_path: str | None, jobs: list[tuple[int, str]]) -> int | None:
    if not model_path:
        return None
    p = Path(model_path).resolve()
    best = None
    for job_id, run_dir in jobs:
        root = Path(run_dir).resolve()
        if (p == root or root in p.parents) and (best is None or job_id > best):
            best = job_id
    return best


def run_extras(session: Session, run_ids: list[int]) -> list[RunExtras]:
    """Metrics, reward spec and training job of each run (unknown ids are skipped)."""
    runs = session.scalars(select(Run).where(Run.id.in_(run_ids))).unique().all()
    metrics: dict[int, list[MetricView]] = {}
    for m in session.scalars(
        select(Metric).where(Metric.run_id.in_(run_ids)).order_by(Metric.name)
    ):
        metrics.setdefault(m.run_id, []).append(metric_view(m))
    jobs = [
        (j.id, str((j.config or {}).get("run_dir")))
        for j in session.scalars(select(TrainingJob))
        if (j.config or {}).get("run_dir")
    ]
    by_id = {r.id: r for r in runs}
    out = []
    for rid in run_ids:
        r = by_id.get(rid)
        if r is None:
            continue
        spec = reward_breakdown((r.config or {}).get("reward"))
        out.append(
            RunExtras(
                run_id=r.id,
                metrics=metrics.get(r.id, []),
                reward_spec=None if spec is None else spec.name,
                reward_spec_hash=None if spec is None else spec.hash,
                training_job_id=_job_for((r.model.provenance or {}).get("path"), jobs),
            )
        )
    return out
