"""Deterministic example content for the leaderboard (page tests, screenshots, benchmarks).

Writes through the same repository functions a runner uses, so it exercises the real path.
Numbers are synthetic and say nothing about any real model.
"""

from __future__ import annotations

import math
import random

from sqlalchemy.orm import Session

from services.store import repository as repo


def seed_example(
    session: Session,
    *,
    seed: int = 0,
    n_models: int = 4,
    runs_per_model: int = 2,
    n_samples: int = 30,
    train_steps: int = 40,
) -> dict[str, list[int]]:
    """A ``dig`` suite with scored runs (f1, miou, loss-like ``ece``) and one training job.

    Returns the ids written: ``{"runs": [...], "jobs": [...]}``. The caller commits.
    """
    rng = random.Random(seed)
    suite = repo.get_or_create_suite(session, "dig", "1", f"{seed:064x}")
    run_ids: list[int] = []
    for m in range(n_models):
        model = repo.get_or_create_model(session, f"tiny-qwen2vl-{m}", revision=f"r{m}")
        skill = 0.3 + 0.5 * (m + 1) / (n_models + 1)
        for r in range(runs_per_model):
            config = {"batch_size": 4, "temperature": 0.0, "replica": r}
            key = repo.make_run_key(
                model.name,
                suite.name,
                suite.version,
                suite.content_hash,
                repo.config_hash(config),
                r,
            )
            run = repo.get_or_create_run(
                session,
                key,
                model=model,
                suite=suite,
                config=config,
                seed=r,
                git_sha="0123456789abcdef",
                lib_versions={"transformers": "5.23.0", "torch": "2.13.0"},
                n_samples=n_samples,
            )
            rows = []
            for i in range(n_samples):
                f1 = min(1.0, max(0.0, rng.gauss(skill, 0.15)))
                failed = rng.random() < 0.05
                rows.append(
                    {
                        "sample_id": f"dig-{i:04d}",
                        "prediction": "<think>…</think><answer>[[10, 20, 50, 60]]</answer>",
                        "reward": 0.0 if failed else f1,
                        "components": {"format": 0.0 if failed else 1.0, "f1": f1},
                        "error": {"code": "parse_error", "message": "no <answer>"}
                        if failed
                        else None,
                    }
                )
            repo.add_predictions(session, run.id, rows)
            mean = sum(x["reward"] for x in rows) / n_samples
            half = 1.96 * 0.15 / math.sqrt(n_samples)
            repo.set_metrics(
                session,
                run.id,
                [
                    {
                        "name": "f1",
                        "value": mean,
                        "ci_low": mean - half,
                        "ci_high": mean + half,
                        "stderr": half / 1.96,
                        "n": n_samples,
                    },
                    {"name": "miou", "value": mean * 0.8, "n": n_samples},
                    {"name": "ece", "value": 0.3 - 0.2 * skill, "higher_is_better": False},
                ],
            )
            repo.finish_run(session, run.id)
            run_ids.append(run.id)
    job = repo.create_training_job(
        session,
        "dig-grpo-deva",
        config={"lr": 1e-6, "beta": 0.0},
        model="tiny-qwen2vl-0",
        seed=seed,
    )
    repo.set_job_status(session, job.id, "running")
    for step in range(train_steps):
        progress = step / max(train_steps - 1, 1)
        repo.add_training_metrics(
            session,
            job.id,
            step,
            {
                "reward/mean": 0.2 + 0.5 * progress + rng.gauss(0, 0.02),
                "reward/std": 0.23 + 0.03 * progress,
                "loss/policy": 0.5 * math.exp(-3 * progress) + rng.gauss(0, 0.01),
                "loss/gfn": 0.2 * math.exp(-2 * progress),
                "entropy": 1.2 - 0.4 * progress,
            },
        )
    repo.set_job_status(session, job.id, "completed")
    return {"runs": run_ids, "jobs": [job.id]}
