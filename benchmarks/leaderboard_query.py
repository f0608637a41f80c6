"""Leaderboard query latency with N runs in the store (target: p99 < 50 ms at 10 k runs).

Fills a fresh store (default: a temporary SQLite file; ``--db-url`` for PostgreSQL) with
``--runs`` completed runs spread over ``--models`` models and two suite versions, each with
four metrics (f1 and miou higher-is-better with a CI, ece lower-is-better, and the mean reward
``reward[dig]`` keyed by its spec), then times

* ``query``: :func:`services.leaderboard.queries.leaderboard` on a session (the SQL + models);
* ``http``: ``GET /v1/leaderboard?suite=&version=&metric=`` through the whole app (middleware, auth
  dependency, JSON) over the in-process ASGI transport;
* ``query_reward``: the query for ``reward[dig]``, which also checks that every ranked run was
  scored with one reward spec (an extra DISTINCT over the metric's rows).

Prints one JSON object. Usage: ``python benchmarks/leaderboard_query.py [--runs 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import insert

from services.leaderboard import queries
from services.leaderboard.app import create_app
from services.leaderboard.settings import LeaderboardSettings
from services.store import db
from services.store.models import Metric, Model, Run, Suite


def fill(url: str, *, runs: int, models: int, seed: int) -> None:
    """Bulk-insert ``runs`` completed runs (core inserts; the repository path is per-row)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    factory = db.session_factory(db.make_engine(url))
    with db.transaction(factory) as s:
        s.execute(
            insert(Model),
            [
                {"name": f"model-{m:03d}", "provenance": {}, "created_at": now}
                for m in range(models)
            ],
        )
        s.execute(
            insert(Suite),
            [
                {"name": "dig", "version": v, "content_hash": f"{v}" * 64, "created_at": now}
                for v in ("1", "2")
            ],
        )
        run_rows, metric_rows = [], []
        for i in range(runs):
            run_id = i + 1
            status = "completed" if rng.random() < 0.9 else rng.choice(["failed", "running"])
            run_rows.append(
                {
                    "id": run_id,
                    "key": f"run-{i:06d}",
                    "model_id": rng.randrange(models) + 1,
                    "suite_id": 1 if rng.random() < 0.8 else 2,
                    "config": {"i": i},
                    "config_hash": f"{i:064x}",
                    "seed": i % 5,
                    "git_sha": "0" * 40,
                    "lib_versions": {"torch": "2.13.0"},
                    "status": status,
                    "source": "local",
                    "n_samples": 500,
                    "created_at": now,
                    "started_at": now,
                    "finished_at": now,
                    "updated_at": now,
                }
            )
            f1 = rng.random()
            run = run_rows[-1]
            same = {
                "suite_id": run["suite_id"],
                "model_id": run["model_id"],
                "run_completed": status == "completed",
            }
            for name, value, hib in (
                ("f1", f1, True),
                ("miou", f1 * 0.8, True),
                ("ece", 1 - f1, False),
                ("reward[dig]", 1 + 2 * f1, True),
            ):
                metric_rows.append(
                    {
                        "run_id": run_id,
                        **same,
                        "name": name,
                        "value": value,
                        "higher_is_better": hib,
                        "stderr": 0.01,
                        "ci_low": value - 0.02,
                        "ci_high": value + 0.02,
                        "n": 500,
                        "reward_spec": "dig" if name.startswith("reward[") else None,
                        "reward_spec_hash": "d" * 64 if name.startswith("reward[") else None,
                        "created_at": now,
                    }
                )
        for start in range(0, len(run_rows), 2000):
            s.execute(insert(Run), run_rows[start : start + 2000])
        for start in range(0, len(metric_rows), 5000):
            s.execute(insert(Metric), metric_rows[start : start + 5000])


def analyze(url: str) -> None:
    """Refresh planner statistics, as autovacuum (PostgreSQL) or ``PRAGMA optimize`` would."""
    engine = db.make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    engine.dispose()


def summary(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in samples_s)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))]

    return {
        "n": len(ms),
        "mean_ms": round(statistics.fmean(ms), 3),
        "p50_ms": round(pct(50), 3),
        "p95_ms": round(pct(95), 3),
        "p99_ms": round(pct(99), 3),
        "max_ms": round(ms[-1], 3),
    }


def time_query(url: str, n: int, metrics: list[str]) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds per call (CPU time is what an idle machine would see for
    the in-process SQLite path; PostgreSQL's own CPU is in the server process)."""
    factory = db.session_factory(db.make_engine(url))
    wall, cpu = [], []
    for i in range(n):
        with factory() as s:
            t0, c0 = time.perf_counter(), time.process_time()
            board = queries.leaderboard(s, "dig", metrics[i % len(metrics)], version="1")
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            assert board.entries
    return wall, cpu


async def time_http(url: str, n: int, metrics: list[str]) -> tuple[list[float], list[float]]:
    app = create_app(LeaderboardSettings(database_url=url, auto_migrate=False))
    wall, cpu = [], []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lb") as c:
            for i in range(n):
                params = {"suite": "dig", "version": "1", "metric": metrics[i % len(metrics)]}
                t0, c0 = time.perf_counter(), time.process_time()
                r = await c.get("/v1/leaderboard", params=params)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                r.raise_for_status()
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--models", type=int, default=50)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--db-url", default=None, help="an EMPTY database (default: temp SQLite)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-ms", type=float, default=50.0)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="prl-lb-bench-")
    url = args.db_url or f"sqlite:///{Path(tmp.name) / 'store.db'}"
    db.upgrade(url)
    t0 = time.perf_counter()
    fill(url, runs=args.runs, models=args.models, seed=args.seed)
    fill_s = time.perf_counter() - t0
    analyze(url)
    metrics = ["f1", "miou", "ece"]
    time_query(url, args.warmup, metrics)
    q_wall, q_cpu = time_query(url, args.requests, metrics)
    asyncio.run(time_http(url, args.warmup, metrics))
    h_wall, h_cpu = asyncio.run(time_http(url, args.requests, metrics))
    r_wall, _ = time_query(url, args.requests, ["reward[dig]"])
    backend = url.split(":", 1)[0].split("+", 1)[0]
    result = {
        "benchmark": "leaderboard_query",
        "backend": backend,
        "runs": args.runs,
        "models": args.models,
        "metric_rows": args.runs * 4,
        "fill_s": round(fill_s, 2),
        "query": summary(q_wall),
        "query_cpu": summary(q_cpu),
        "http": summary(h_wall),
        "http_cpu": summary(h_cpu),
        "query_reward": summary(r_wall),
        "target_p99_ms": args.target_ms,
        "meets_target": summary(h_wall)["p99_ms"] < args.target_ms,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
