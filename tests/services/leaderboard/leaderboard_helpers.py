"""Helpers shared by the leaderboard tests."""

from __future__ import annotations

import itertools

from services.leaderboard.sample_data import seed_example
from services.store import db
from services.store import repository as repo

_seeds = itertools.count()


def seed_database(url: str, **example: int) -> dict[str, list[int]]:
    """Migrate the database at ``url`` and write :func:`seed_example` content (``example``: its
    keyword arguments) in one committed transaction; returns the ids written."""
    db.upgrade(url)
    eng = db.make_engine(url)
    try:
        with db.transaction(db.session_factory(eng)) as s:
            return seed_example(s, **example)
    finally:
        eng.dispose()


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
