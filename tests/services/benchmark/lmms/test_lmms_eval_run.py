"""The real lmms-eval 0.7.3 on a tiny saved Qwen2-VL with a local-file task, end to end:
``prl bench lmms`` → the SQL store → the leaderboard API and page.

Runs inside ``.venv-lmms`` (``make lmms-test``); skipped elsewhere. The tiny model is random,
so the expected score is made checkable: a first run records the model's (greedy,
deterministic) answers; the second version of the task takes those answers as the targets of
some documents and a guaranteed mismatch for the others, so lmms-eval's ``exact_match`` must be
exactly the fraction of matching documents, and its stderr the hand-computed one.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import sys

import httpx
import pytest

from tests.services.benchmark.lmms.local_task import TASK, make_docs, write_task

pytestmark = [
    pytest.mark.lmms,
    pytest.mark.skipif(
        importlib.util.find_spec("lmms_eval") is None,
        reason="needs lmms-eval 0.7.3: `make lmms-env`, then `make lmms-test`",
    ),
    pytest.mark.timeout(900),
]

SUITE = f"lmms-eval/{TASK}"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from trainer.tiny import build_tiny_vlm

    out = tmp_path_factory.mktemp("ckpt") / "tiny-qwen2vl"
    build_tiny_vlm("qwen2vl", out, seed=0)
    return out


def bench(capsys, *args: str) -> tuple[int, str, str]:
    from services.cli.errors import run

    capsys.readouterr()
    code = run(["bench", "lmms", "--python", sys.executable, "--offline", *args])
    out, err = capsys.readouterr()
    return code, out, err


def leaderboard_calls(db_url: str, *calls: tuple[str, dict]) -> list[httpx.Response]:
    from services.common.auth import DEV_API_KEY
    from services.leaderboard.app import create_app
    from services.leaderboard.settings import LeaderboardSettings

    app = create_app(LeaderboardSettings(database_url=db_url))
    headers = {"Authorization": f"Bearer {DEV_API_KEY}"}

    async def go() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://lb") as c:
                return [await c.get(url, params=p, headers=headers) for url, p in calls]

    return asyncio.run(go())


def test_local_task_through_lmms_eval_into_the_leaderboard(ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    db = f"sqlite:///{tmp_path / 'store.db'}"
    docs = make_docs(tmp_path / "images", 4)
    tasks_v1 = write_task(tmp_path / "tasks-v1", docs, version="1.0")

    # 1. the model's own answers, stored per document
    code, out, err = bench(
        capsys, "--model", str(ckpt), "--tasks", TASK, "--include-path", str(tasks_v1),
        "--db", db, "--json",
    )  # fmt: skip
    assert code == 0, err
    (first,) = json.loads(out)
    assert first["suite"] == SUITE and first["version"] == "1.0+lmms-eval.0.7.3"
    assert first["n_samples"] == 4 and first["n_new"] == 4
    from services.benchmark.store import SqlRunStore

    rows = {r["sample_id"]: r for r in SqlRunStore(db).rows(first["run_id"])}
    assert sorted(rows) == ["0", "1", "2", "3"]
    matches = [float(rows[str(i)]["prediction"] == d["answer"]) for i, d in enumerate(docs)]
    (em,) = first["metrics"]
    assert em["name"] == "exact_match" and em["n"] == 4
    assert em["value"] == pytest.approx(sum(matches) / 4)  # lmms-eval's mean, recomputed
    assert [rows[str(i)]["components"]["exact_match"] for i in range(4)] == matches
    assert [rows[str(i)]["extra"]["target"] for i in range(4)] == [d["answer"] for d in docs]

    # 2. targets = those answers for documents 0 and 2, a sure mismatch for 1 (and 3, which
    #    --limit 3 leaves out): exact_match must be 2/3, its stderr s/√n with s² = 1/3
    said = [rows[str(i)]["prediction"] for i in range(4)]
    targets = [said[0], said[1] + "≠", said[2], said[3] + "≠"]
    docs_v2 = [{**d, "answer": t} for d, t in zip(docs, targets, strict=True)]
    tasks_v2 = write_task(tmp_path / "tasks-v2", docs_v2, version="2.0")
    code, out, err = bench(
        capsys, "--model", str(ckpt), "--tasks", TASK, "--include-path", str(tasks_v2),
        "--limit", "3", "--db", db, "--json",
    )  # fmt: skip
    assert code == 0, err
    (second,) = json.loads(out)
    (em,) = second["metrics"]
    assert second["version"] == "2.0+lmms-eval.0.7.3" and second["n_samples"] == 3
    assert em["value"] == pytest.approx(2 / 3, abs=1e-12)
    assert em["stderr"] == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3), abs=1e-12)
    assert em["n"] == 3

    # 3. the leaderboard lists the suite beside any other and ranks the model on it
    suites, board, detail, page = leaderboard_calls(
        db,
        ("/v1/suites", {}),
        ("/v1/leaderboard", {"suite": SUITE, "metric": "exact_match"}),
        (f"/v1/runs/{second['run_id']}", {}),
        ("/", {}),
    )
    assert suites.status_code == board.status_code == detail.status_code == 200
    listed = {(s["name"], s["version"]): s for s in suites.json()["suites"]}
    assert listed[(SUITE, "2.0+lmms-eval.0.7.3")]["metrics"] == ["exact_match"]
    assert (SUITE, "1.0+lmms-eval.0.7.3") in listed
    lb = board.json()
    assert lb["version"] == "2.0+lmms-eval.0.7.3"  # the newest version by default
    (entry,) = lb["entries"]
    assert entry["model"] == ckpt.name and entry["value"] == pytest.approx(2 / 3)
    run = detail.json()
    assert run["status"] == "completed" and run["n_done"] == 3
    assert run["config"]["harness"] == "lmms-eval" and run["config"]["limit"] == 3
    assert run["config"]["task"] == TASK and run["lib_versions"]["lmms_eval"] == "0.7.3"
    assert run["model_provenance"]["path"] == str(ckpt.resolve())
    assert run["finished_at"] is not None
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]

    # 4. the same command again lands on the same run: nothing is stored twice
    code, out, _ = bench(
        capsys, "--model", str(ckpt), "--tasks", TASK, "--include-path", str(tasks_v2),
        "--limit", "3", "--db", db, "--json",
    )  # fmt: skip
    (again,) = json.loads(out)
    assert code == 0 and again["run_id"] == second["run_id"] and again["n_new"] == 0


def test_unknown_task_is_one_line_and_exit_code_2(ckpt, tmp_path, capsys):
    tasks = write_task(tmp_path / "tasks", make_docs(tmp_path / "images", 1))
    code, out, err = bench(
        capsys, "--model", str(ckpt), "--tasks", "prl_yesno_locl", "--include-path", str(tasks),
        "--db", f"sqlite:///{tmp_path / 's.db'}",
    )  # fmt: skip
    assert code == 2 and out == ""
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: unknown lmms-eval task 'prl_yesno_locl'")
    assert f"did you mean '{TASK}'" in line
