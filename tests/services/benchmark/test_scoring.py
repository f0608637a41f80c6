"""Scoring over HTTP (the reward service app) and in-process give identical runs."""

from __future__ import annotations

import pytest

from services.benchmark.adapters import get_adapter
from services.benchmark.runner import RunOptions, run_benchmark
from services.benchmark.scoring import HttpScorer, InProcessScorer
from services.benchmark.store import MemoryRunStore


@pytest.fixture()
def reward_client():  # type: ignore[no-untyped-def]
    app_mod = pytest.importorskip("services.reward.app")
    from fastapi.testclient import TestClient

    with TestClient(app_mod.create_app()) as client:
        yield client


def _rows(task, preds, scorer, batch_size):  # type: ignore[no-untyped-def]
    store = MemoryRunStore()
    res = run_benchmark(
        task,
        get_adapter("predictions", path=str(preds)),
        store=store,
        scorer=scorer,
        options=RunOptions(batch_size=batch_size, progress=False, n_boot=100),
    )
    rows = {
        r["sample_id"]: (r["reward"], r["components"], r["error"]) for r in store.rows(res.run_id)
    }
    return rows, [m.as_dict() for m in res.metrics]


def test_http_and_in_process_scoring_give_identical_rows_and_metrics(
    dig_task, dig_predictions, reward_client
):
    http = HttpScorer(client=reward_client, api_key="prl-dev-key", max_samples=4)
    rows_http, metrics_http = _rows(dig_task, dig_predictions, http, batch_size=5)
    rows_local, metrics_local = _rows(dig_task, dig_predictions, InProcessScorer(), batch_size=2)
    assert rows_http == rows_local
    assert metrics_http == metrics_local
    assert any(err is not None for _, _, err in rows_http.values())  # parse failures are data


def test_http_scorer_reports_service_errors(reward_client):
    from schemas.reward import BoxSolution, Sample

    scorer = HttpScorer(client=reward_client, api_key="prl-dev-key")
    sample = Sample(id="a", completion="x", solution=BoxSolution(boxes=[]))
    with pytest.raises(RuntimeError, match="reward service answered 4"):
        scorer.score([sample], "no_such_preset")


def test_http_scorer_retries_busy_service_honouring_retry_after():
    import httpx

    from schemas.reward import BoxSolution, Sample

    waits: list[float] = []
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/score":  # GET /v1/limits: this server has none
            return httpx.Response(404, json={"error": {}})
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503, headers={"Retry-After": "2"}, json={"error": {}})
        spec = {"components": [{"name": "format"}]}
        return httpx.Response(
            200, json={"results": [{"id": "a", "reward": 0.0, "components": {}}], "reward": spec}
        )

    client = httpx.Client(base_url="http://reward", transport=httpx.MockTransport(handler))
    scorer = HttpScorer(client=client, sleep=waits.append)
    out = scorer.score([Sample(id="a", completion="x", solution=BoxSolution(boxes=[]))], "dig")
    assert [r.id for r in out] == ["a"] and len(calls) == 3 and waits == [2.0, 2.0]


def test_http_scorer_sends_at_most_max_samples_per_request_in_order():
    import json

    import httpx

    from schemas.reward import BoxSolution, Sample

    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/score":
            return httpx.Response(404, json={"error": {}})
        ids = [s["id"] for s in json.loads(request.content)["samples"]]
        sizes.append(len(ids))
        results = [{"id": i, "reward": float(i), "components": {}} for i in ids]
        spec = {"components": [{"name": "format"}]}
        return httpx.Response(200, json={"results": results, "reward": spec})

    scorer = HttpScorer(transport=httpx.MockTransport(handler), max_samples=3)
    samples = [Sample(id=str(i), completion="x", solution=BoxSolution(boxes=[])) for i in range(7)]
    assert scorer.score([], "dig") == [] and sizes == []  # an empty batch sends nothing
    out = scorer.score(samples, "dig")
    assert [r.id for r in out] == [str(i) for i in range(7)] and sizes == [3, 3, 1]
