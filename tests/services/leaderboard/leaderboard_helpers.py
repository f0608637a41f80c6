"""Helpers shared by the leaderboard tests."""

from __future__ import annotations

import itertools

from services.store import repository as repo

_seeds = itertools.count()


def add_run(
    s,
    model: str,
    metrics: dict[str, float],
    *,
    suite=("dig", "1", "hash-1"),
    status="completed",
    lower=(),
    ci: dict[str, tuple[float, float]] | None = None,
    n_samples: int = 0,
):
    """One run of ``model`` on ``suite`` with the given metric values; returns its id."""
    su = repo.get_or_create_suite(s, *suite)
    seed = next(_seeds)
    run = repo.get_or_create_run(
        s,
        f"run-{seed}",
        model=model,
        suite=su,
        config={"i": seed},
        seed=seed,
        git_sha="abc",
        lib_versions={},
    )
    repo.add_predictions(
        s, run.id, [{"sample_id": f"s{i}", "reward": i / 10} for i in range(n_samples)]
    )
    rows = []
    for name, value in metrics.items():
        lo, hi = (ci or {}).get(name, (None, None))
        rows.append(
            {
                "name": name,
                "value": value,
                "higher_is_better": name not in lower,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    repo.set_metrics(s, run.id, rows)
    if status != "running":
        repo.finish_run(s, run.id, status)
    return run.id
