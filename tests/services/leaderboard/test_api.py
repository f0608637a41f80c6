import asyncio

import httpx
import pytest

from services.common.auth import DEV_API_KEY
from services.leaderboard.app import create_app
from services.leaderboard.settings import LeaderboardSettings
from tests.services.leaderboard.leaderboard_helpers import seed_database

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}


def make(db_url, **over):
    return create_app(LeaderboardSettings(database_url=db_url, **over))


async def _calls(app, calls):
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lb") as c:
            return [await c.request(m, u, **kw) for m, u, kw in calls]


def call(app, *calls):
    return asyncio.run(_calls(app, [(c[0], c[1], c[2] if len(c) > 2 else {}) for c in calls]))


@pytest.fixture
def seeded(db_url):
    ids = seed_database(db_url, n_models=3, runs_per_model=2, n_samples=12, train_steps=5)
    return db_url, ids


def upload_body(seed=0):
    return {
        "model": {"name": "remote"},
        "suite": {"name": "dig", "version": "1", "content_hash": f"{0:064x}"},
        "config": {"t": 0},
        "seed": seed,
        "predictions": [{"sample_id": "a", "reward": 1.0}, {"sample_id": "b", "reward": 0.0}],
        "metrics": [{"name": "f1", "value": 0.99, "ci_low": 0.9, "ci_high": 1.0}],
    }


def test_read_routes(seeded):
    url, ids = seeded
    run_id, job_id = ids["runs"][0], ids["jobs"][0]
    suites, runs, run, lb, lb_v, curves, jobs = call(
        make(url),
        ("GET", "/v1/suites"),
        ("GET", "/v1/runs", {"params": {"suite": "dig", "limit": 4}}),
        ("GET", f"/v1/runs/{run_id}", {"params": {"limit": 5}}),
        ("GET", "/v1/leaderboard", {"params": {"suite": "dig", "metric": "f1"}}),
        ("GET", "/v1/leaderboard", {"params": {"suite": "dig", "metric": "ece", "version": "1"}}),
        (
            "GET",
            f"/v1/training-jobs/{job_id}/metrics",
            {"params": {"name": ["reward/mean", "loss/gfn"], "max_points": 3}},
        ),
        ("GET", "/v1/training-jobs"),
    )
    assert suites.status_code == 200
    assert suites.json()["suites"][0]["metrics"] == ["ece", "f1", "miou"]
    page = runs.json()
    assert len(page["items"]) == 4 and page["next_cursor"] == page["items"][-1]["id"]
    detail = run.json()
    assert detail["id"] == run_id and {m["name"] for m in detail["metrics"]} == {
        "f1",
        "miou",
        "ece",
    }
    assert len(detail["samples"]["items"]) == 5 and detail["samples"]["next_cursor"] is not None
    board = lb.json()
    assert [e["rank"] for e in board["entries"]] == [1, 2, 3]
    values = [e["value"] for e in board["entries"]]
    assert values == sorted(values, reverse=True)
    ece = lb_v.json()
    assert ece["higher_is_better"] is False
    assert [e["value"] for e in ece["entries"]] == sorted(e["value"] for e in ece["entries"])
    series = curves.json()["series"]
    assert set(series) == {"reward/mean", "loss/gfn"} and series["loss/gfn"]["steps"] == [0, 2, 4]
    assert jobs.json()["items"][0]["id"] == job_id


def test_not_found_and_bad_queries_have_error_bodies(seeded):
    url, _ = seeded
    missing, no_metric, no_param, bad_cursor, bad_status = call(
        make(url),
        ("GET", "/v1/runs/999999"),
        ("GET", "/v1/leaderboard", {"params": {"suite": "dig", "metric": "nope"}}),
        ("GET", "/v1/leaderboard", {"params": {"suite": "dig"}}),
        ("GET", "/v1/runs", {"params": {"cursor": "x"}}),
        ("GET", "/v1/runs", {"params": {"status": "exploded"}}),
    )
    assert (
        missing.status_code == 404 and "no run with id 999999" in missing.json()["error"]["message"]
    )
    assert no_metric.status_code == 404 and "metrics here" in no_metric.json()["error"]["message"]
    assert (
        no_param.status_code == 422
        and no_param.json()["error"]["message"] == "query.metric: Field required"
    )
    assert bad_cursor.status_code == 422 and bad_status.status_code == 422


def test_upload_needs_a_write_key_and_is_idempotent(seeded):
    url, _ = seeded
    app = make(url, api_keys={"reader": ["read"], "writer": ["read", "write"]})
    w = {"Authorization": "Bearer writer"}
    anon, reader, first, again, reused, plain, lb = call(
        app,
        ("POST", "/v1/runs", {"json": upload_body()}),
        (
            "POST",
            "/v1/runs",
            {"json": upload_body(), "headers": {"Authorization": "Bearer reader"}},
        ),
        ("POST", "/v1/runs", {"json": upload_body(), "headers": {**w, "Idempotency-Key": "u1"}}),
        ("POST", "/v1/runs", {"json": upload_body(), "headers": {**w, "Idempotency-Key": "u1"}}),
        (
            "POST",
            "/v1/runs",
            {"json": upload_body(seed=3), "headers": {**w, "Idempotency-Key": "u1"}},
        ),
        ("POST", "/v1/runs", {"json": upload_body(), "headers": w}),
        ("GET", "/v1/leaderboard", {"params": {"suite": "dig", "metric": "f1"}}),
    )
    assert anon.status_code == 401 and reader.status_code == 403
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert (
        reused.status_code == 422 and "different request body" in reused.json()["error"]["message"]
    )
    assert plain.status_code == 200 and plain.json()["predictions_added"] == 0
    top = lb.json()["entries"][0]
    assert (top["model"], top["run_id"], top["value"]) == ("remote", first.json()["id"], 0.99)


def test_upload_conflict_and_validation(seeded):
    url, _ = seeded
    changed = upload_body()
    changed["suite"]["content_hash"] = "different"
    bad = upload_body()
    bad["metrics"][0]["value"] = "NaN"
    conflict, invalid = call(
        make(url),
        ("POST", "/v1/runs", {"json": changed, "headers": AUTH}),
        ("POST", "/v1/runs", {"json": bad, "headers": AUTH}),
    )
    assert conflict.status_code == 409 and "new version" in conflict.json()["error"]["message"]
    assert invalid.status_code == 422
    assert invalid.json()["error"]["message"].startswith("metrics[0].value")


def test_readiness_checks_the_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    (not_ready,) = call(make(url, auto_migrate=False), ("GET", "/readyz"))
    assert not_ready.status_code == 503
    assert "prl db upgrade" in not_ready.json()["failing"]["database"]
    (ready,) = call(make(url), ("GET", "/readyz"))
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_page_and_static_files_are_served(tmp_path):
    page, js, css, charts, openapi = call(
        make(f"sqlite:///{tmp_path / 'p.db'}"),
        ("GET", "/"),
        ("GET", "/static/js/leaderboard.js"),
        ("GET", "/static/style.css"),
        ("GET", "/static/vendor/uplot/uPlot.iife.min.js"),
        ("GET", "/openapi.json"),
    )
    assert page.status_code == 200 and 'id="leaderboard-table"' in page.text
    assert js.status_code == 200 and "/v1/leaderboard" in js.text
    assert css.status_code == 200 and charts.status_code == 200 and "uPlot" in charts.text
    paths = openapi.json()["paths"]
    assert {
        "/v1/suites",
        "/v1/runs",
        "/v1/runs/{run_id}",
        "/v1/leaderboard",
        "/v1/training-jobs/{job_id}/metrics",
        "/v1/runs/{run_id}/reward",
        "/v1/runs/{run_id}/samples/{sample_id}",
        "/v1/run-extras",
    } <= set(paths)
    assert "/" not in paths


def test_settings_read_the_shared_database_url(monkeypatch):
    monkeypatch.setenv("PRL_DATABASE_URL", "sqlite:////tmp/shared.db")
    assert LeaderboardSettings().database_url == "sqlite:////tmp/shared.db"
    monkeypatch.setenv("PRL_LEADERBOARD_DATABASE_URL", "sqlite:////tmp/own.db")
    assert LeaderboardSettings().database_url == "sqlite:////tmp/own.db"


def test_inputs_postgres_cannot_store_are_rejected_not_500(seeded):
    url, ids = seeded
    huge = upload_body(seed=2**70)
    nul = upload_body()
    nul["model"]["name"] = "a\x00b"
    text = upload_body(seed=11)
    text["predictions"][0]["prediction"] = "before\x00after"
    r_huge, r_nul, r_text, q_nul, q_id, curves = call(
        make(url),
        ("POST", "/v1/runs", {"json": huge, "headers": AUTH}),
        ("POST", "/v1/runs", {"json": nul, "headers": AUTH}),
        ("POST", "/v1/runs", {"json": text, "headers": AUTH}),
        ("GET", "/v1/leaderboard", {"params": {"suite": "a\x00", "metric": "f1"}}),
        ("GET", f"/v1/runs/{2**40}"),
        ("GET", f"/v1/training-jobs/{ids['jobs'][0]}/metrics", {"params": {"name": "x\x00"}}),
    )
    assert r_huge.status_code == 422 and r_huge.json()["error"]["message"].startswith("seed")
    assert r_nul.status_code == 422 and r_nul.json()["error"]["message"].startswith("model.name")
    assert r_text.status_code == 201
    assert q_nul.status_code == 422 and q_id.status_code == 422
    assert curves.status_code == 200 and curves.json()["series"] == {}
    (detail,) = call(make(url), ("GET", f"/v1/runs/{r_text.json()['id']}"))
    assert detail.json()["samples"]["items"][0]["prediction"] == "before\ufffdafter"


def test_uploads_of_two_rewards_are_keyed_apart_and_a_mixed_metric_is_a_422(db_url):
    seed_database(db_url, n_models=1, runs_per_model=1, n_samples=2, train_steps=1)
    bodies = []
    for i, reward in enumerate(["dig", "deva_detection"]):
        body = upload_body(seed=10 + i)
        body["model"]["name"] = f"m-{reward}"
        body["config"] = {"reward": reward}
        body["metrics"] = [{"name": "reward", "value": [1.5, 0.25][i]}]
        bodies.append(body)
    # a third run that claims the keyed name of another spec without its hash
    mixed = upload_body(seed=12)
    mixed["model"]["name"] = "m-mixed"
    mixed["metrics"] = [{"name": "reward[dig]", "value": 0.2, "reward_spec_hash": "0" * 64}]
    w = {"headers": AUTH}
    r1, r2, lb_dig, lb_deva, r3, lb_mixed = call(
        make(db_url),
        ("POST", "/v1/runs", {**w, "json": bodies[0]}),
        ("POST", "/v1/runs", {**w, "json": bodies[1]}),
        ("GET", "/v1/leaderboard", {"params": {"suite": "dig", "metric": "reward[dig]"}}),
        (
            "GET",
            "/v1/leaderboard",
            {"params": {"suite": "dig", "metric": "reward[deva_detection]"}},
        ),
        ("POST", "/v1/runs", {**w, "json": mixed}),
        ("GET", "/v1/leaderboard", {"params": {"suite": "dig", "metric": "reward[dig]"}}),
    )
    assert (r1.status_code, r2.status_code, r3.status_code) == (201, 201, 201)
    assert [e["model"] for e in lb_dig.json()["entries"]] == ["m-dig"]
    assert lb_dig.json()["reward_spec"] == "dig"
    assert [e["model"] for e in lb_deva.json()["entries"]] == ["m-deva_detection"]
    assert lb_mixed.status_code == 422
    assert "different reward specs" in lb_mixed.json()["error"]["message"]
