"""PostgreSQL restarts during a benchmark run (``services.benchmark.runner``, the
predictions-file adapter, the SQL run store on a throwaway cluster from ``tests/pg.py``).

1. Restart between two batches: the pool's pre-ping reconnects and the run simply goes on.
2. The server is down when a batch is stored: the run fails loudly; started again with the
   same options it resumes on the same run key, skipping what was stored. (A clean ``fast``
   stop: the throwaway cluster runs with ``synchronous_commit=off``, under which an
   ``immediate`` stop may drop the last acknowledged commits — the resume then redoes them.)

Either way the run ends ``completed`` with exactly one prediction row per sample (none lost,
none duplicated) and metrics equal to a run that never saw a fault.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from services.benchmark.adapters import GenerationRequest, get_adapter
from services.benchmark.runner import RunOptions, run_benchmark
from services.benchmark.scoring import InProcessScorer
from services.benchmark.store import MemoryRunStore, SqlRunStore
from tests.pg import PostgresServer, _demote

pytestmark = pytest.mark.postgres
N_SAMPLES = 9


@pytest.fixture(scope="module")
def dig_task(tmp_path_factory):
    from tasks.dig.generate import generate
    from tasks.registry import get_task

    root = tmp_path_factory.mktemp("dig")
    generate(root, N_SAMPLES, size=(64, 64), progress=False, seed=3)
    return get_task("dig", root=str(root))


@pytest.fixture
def predictions(dig_task, tmp_path) -> Path:
    """Every GT box for even samples, only the first box for odd ones."""
    path = tmp_path / "preds.jsonl"
    lines = []
    for i, s in enumerate(dig_task.samples()):
        boxes = [list(b) for b in s.solution.boxes][: None if i % 2 == 0 else 1]
        answer = json.dumps([{"bbox_2d": b} for b in boxes])
        lines.append(json.dumps({"id": s.id, "completion": f"<answer>{answer}</answer>"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def pg_ctl(server: PostgresServer, *args: str) -> None:
    """``pg_ctl`` on the test cluster (a restart reuses the options of the first start; its log
    goes to the server log so the new postmaster does not hold our output pipe open)."""
    preexec, _, _ = _demote()
    log = ["-l", str(server.root / "server.log")] if args[0] == "restart" else []
    out = subprocess.run(
        [
            str(server.bin / "pg_ctl"),
            "-D",
            str(server.root / "data"),
            "-w",
            "-t",
            "60",
            *log,
            *args,
        ],
        preexec_fn=preexec,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr


class FaultAfter:
    """An adapter that runs ``fault()`` once, just before answering its ``n``-th batch."""

    def __init__(self, inner, n: int, fault) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.n, self.fault, self.calls = inner, n, fault, 0
        self.name = inner.name

    def describe(self):  # type: ignore[no-untyped-def]
        return self.inner.describe()

    def input_size(self, size):  # type: ignore[no-untyped-def]
        return None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        self.calls += 1
        if self.calls == self.n:
            self.fault()
        return self.inner.generate(requests)


def options() -> RunOptions:
    return RunOptions(batch_size=3, progress=False, n_boot=20)


def stored(url: str, key: str) -> tuple[str, list[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            status = c.execute(text("SELECT status FROM runs WHERE key = :k"), {"k": key}).scalar()
            ids = c.execute(
                text(
                    "SELECT p.sample_id FROM predictions p JOIN runs r ON r.id = p.run_id "
                    "WHERE r.key = :k"
                ),
                {"k": key},
            ).scalars()
            return status, list(ids)
    finally:
        engine.dispose()


def reference_metrics(task, path: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    res = run_benchmark(
        task,
        get_adapter("predictions", path=str(path)),
        store=MemoryRunStore(),
        scorer=InProcessScorer(),
        options=options(),
    )
    return {m.name: m.value for m in res.metrics}


def test_restart_between_batches_the_run_goes_on(
    dig_task, predictions, postgres_server, postgres_url
):
    adapter = FaultAfter(
        get_adapter("predictions", path=str(predictions)),
        2,
        lambda: pg_ctl(postgres_server, "restart", "-m", "fast"),
    )
    store = SqlRunStore(postgres_url)
    res = run_benchmark(dig_task, adapter, store=store, scorer=InProcessScorer(), options=options())
    store.engine.dispose()
    status, ids = stored(postgres_url, res.key)
    assert status == "completed"
    assert sorted(ids) == sorted(s.id for s in dig_task.samples())  # none lost, none doubled
    assert res.n_new == N_SAMPLES
    assert {m.name: m.value for m in res.metrics} == reference_metrics(dig_task, predictions)


def test_down_while_storing_fails_then_resumes_on_the_same_key(
    dig_task, predictions, postgres_server, postgres_url
):
    adapter = FaultAfter(
        get_adapter("predictions", path=str(predictions)),
        2,
        lambda: pg_ctl(postgres_server, "stop", "-m", "fast"),
    )
    store = SqlRunStore(postgres_url)
    try:
        with pytest.raises(Exception) as info:
            run_benchmark(
                dig_task, adapter, store=store, scorer=InProcessScorer(), options=options()
            )
        assert "OperationalError" in type(info.value).__name__ or "connect" in str(info.value)
    finally:
        pg_ctl(postgres_server, "restart", "-m", "fast")  # restart starts a stopped server
    store.engine.dispose()

    store = SqlRunStore(postgres_url)
    res = run_benchmark(
        dig_task,
        get_adapter("predictions", path=str(predictions)),
        store=store,
        scorer=InProcessScorer(),
        options=options(),
    )
    store.engine.dispose()
    status, ids = stored(postgres_url, res.key)
    assert status == "completed"
    assert sorted(ids) == sorted(s.id for s in dig_task.samples())
    assert res.n_new == N_SAMPLES - 3  # the first batch was stored before the outage
    assert {m.name: m.value for m in res.metrics} == reference_metrics(dig_task, predictions)


def small_upload(key: str) -> dict:
    return {
        "key": key,
        "model": {"name": "m"},
        "suite": {"name": "s", "version": "1", "content_hash": "h"},
        "predictions": [{"sample_id": f"s{i}", "prediction": "x", "reward": 0.5} for i in range(5)],
    }


def test_store_outage_is_503_with_retry_after_on_every_store_service(
    postgres_server, postgres_url, tmp_path
):
    """The issue's request: ``POST /v1/runs`` while PostgreSQL is down answered
    ``500 internal (OperationalError); this is a bug``. Now 503 ``store_unavailable`` +
    ``Retry-After`` + ``Connection: close`` on the leaderboard and the trainer, and the same
    upload succeeds once the server is back."""
    from fastapi.testclient import TestClient

    from services.leaderboard.app import create_app as leaderboard_app
    from services.leaderboard.settings import LeaderboardSettings
    from tests.services.reliability.helpers import AUTH
    from trainer.service import TrainerServiceSettings
    from trainer.service import create_app as trainer_app

    lb = leaderboard_app(LeaderboardSettings(database_url=postgres_url))
    tr = trainer_app(TrainerServiceSettings(runs_dir=tmp_path / "runs"), database_url=postgres_url)
    with (
        TestClient(lb, raise_server_exceptions=False, headers=AUTH) as lbc,
        TestClient(tr, raise_server_exceptions=False, headers=AUTH) as trc,
    ):
        assert lbc.post("/v1/runs", json=small_upload("before")).status_code == 201
        pg_ctl(postgres_server, "stop", "-m", "fast")
        try:
            answers = {
                "upload": lbc.post("/v1/runs", json=small_upload("during")),
                "runs": lbc.get("/v1/runs"),
                "jobs": trc.get("/v1/jobs"),
            }
            ready = lbc.get("/readyz")
        finally:
            pg_ctl(postgres_server, "restart", "-m", "fast")
        for name, r in answers.items():
            assert r.status_code == 503, (name, r.status_code, r.text)
            assert r.headers["retry-after"] == "1", name
            assert r.headers["connection"] == "close", name
            assert r.json()["error"]["code"] == "store_unavailable", name
            assert "bug" not in r.json()["error"]["message"]
        assert ready.status_code == 503 and "database" in ready.json()["failing"]
        again = lbc.post("/v1/runs", json=small_upload("during"))
        assert again.status_code == 201, again.text  # nothing half-written by the failed try
        assert again.json()["predictions_added"] == 5
