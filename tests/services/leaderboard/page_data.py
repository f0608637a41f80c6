"""A store that looks like a real project, for the page tests and screenshots.

A generated DiG set (raster renderer, 192×192 pairs), three benchmark runs through the real
runner and predictions adapter — a near-perfect model (GT boxes moved by up to 3 px), a
weak one (the first difference only, or nothing) and the near-perfect one scored with a
harmonic spec — and two training jobs with the metric names the trainer logs, one of whose
run directories holds the near-perfect model (the leaderboard links it to the job).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

HARMONIC = {
    "components": [{"name": "format"}, {"name": "f1"}, {"name": "miou"}],
    "aggregate": {"method": "harmonic"},
}


def _answer(boxes: list[list[float]]) -> str:
    return (
        "<think>compare</think> <answer>"
        + json.dumps([{"bbox_2d": b} for b in boxes])
        + "</answer>"
    )


def _write(path: Path, table: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps({"id": k, "completion": v}) + "\n" for k, v in table.items())
    )
    return path


def _curves(step: int, n: int, rng: random.Random, shift: float) -> dict[str, float]:
    p = step / n
    return {
        "reward": 0.9 + 1.2 * p + shift + rng.gauss(0, 0.05),
        "reward_std": 0.23 + 0.03 * p,
        "reward_service/component/format": min(1.0, 0.6 + 0.5 * p),
        "reward_service/component/f1": 0.15 + 0.4 * p + shift,
        "reward_service/component/miou": 0.1 + 0.35 * p + shift,
        "reward_service/zero_variance_frac": max(0.0, 0.5 - 0.4 * p),
        "frac_reward_zero_std": max(0.0, 0.5 - 0.4 * p),
        "policy_loss": 0.02 * math.exp(-2 * p) + rng.gauss(0, 0.002),
        "div/loss": 0.05 * math.exp(-p),
        "ent/loss": 0.01 + 0.005 * p,
        "loss": 0.08 * math.exp(-2 * p),
        "kl": 0.001 + 0.004 * p,
        "entropy": 5.6 - 1.5 * p,
        "grad_norm": 2.0 * math.exp(-p) + rng.gauss(0, 0.1),
        "learning_rate": 1e-5 * min(1.0, step / 5),
        "completions/mean_length": 40 + 20 * p,
        "tokens_per_s": 900 + rng.gauss(0, 30),
    }


def seed_page_store(db_url: str, root: Path, *, n_samples: int = 12, steps: int = 40) -> dict:
    """Write the store at ``db_url`` (data under ``root``); returns the run and job ids."""
    from services.benchmark.adapters import get_adapter
    from services.benchmark.runner import RunOptions, run_benchmark
    from services.benchmark.scoring import InProcessScorer
    from services.benchmark.store import SqlRunStore
    from services.store import db
    from services.store import repository as repo
    from tasks.dig.generate import generate
    from tasks.registry import get_task

    generate(root / "dig", n_samples, size=(192, 192), progress=False, seed=5)
    task = get_task("dig", root=str(root / "dig"))
    rng = random.Random(0)
    good, weak = {}, {}
    for i, s in enumerate(task.samples()):
        boxes = [[v + rng.uniform(-3, 3) for v in b] for b in s.solution.boxes]
        good[s.id] = _answer(boxes)
        weak[s.id] = _answer(boxes[:1]) if i % 2 == 0 else "<think>?</think> <answer>[]</answer>"
    job_dir = root / "runs" / "job-1"
    model_dir = job_dir / "final"
    preds = {
        "qwen2vl-dig-grpo": _write(model_dir / "qwen2vl-dig-grpo.jsonl", good),
        "qwen2vl-base": _write(root / "preds" / "qwen2vl-base.jsonl", weak),
    }
    store = SqlRunStore(db_url)
    runs = {}
    for name, path, reward in [
        ("qwen2vl-dig-grpo", preds["qwen2vl-dig-grpo"], None),
        ("qwen2vl-base", preds["qwen2vl-base"], None),
        ("qwen2vl-dig-grpo", preds["qwen2vl-dig-grpo"], HARMONIC),
    ]:
        from schemas.reward import RewardSpec

        opts = RunOptions(
            progress=False,
            n_boot=200,
            reward=None if reward is None else RewardSpec.model_validate(reward),
        )
        res = run_benchmark(
            task,
            get_adapter("predictions", path=str(path), name=name),
            store=store,
            scorer=InProcessScorer(),
            options=opts,
        )
        runs[f"{name}{'' if reward is None else '-harmonic'}"] = res.run_id
    eng = db.make_engine(db_url)
    jobs = []
    with db.transaction(db.session_factory(eng)) as s:
        for k, (name, shift) in enumerate([("dig-grpo-deva", 0.0), ("dig-grpo-baseline", -0.1)]):
            job = repo.create_training_job(
                s,
                name,
                config={"run_dir": str(root / "runs" / f"job-{k + 1}"), "max_steps": steps},
                model="tiny-qwen2vl",
                seed=k,
                git_sha="0123abc",
            )
            repo.set_job_status(s, job.id, "running")
            for step in range(1, steps + 1):
                repo.add_training_metrics(s, job.id, step, _curves(step, steps, rng, shift))
            repo.set_job_status(s, job.id, "completed")
            jobs.append(job.id)
    eng.dispose()
    return {"runs": runs, "jobs": jobs, "task": task}
