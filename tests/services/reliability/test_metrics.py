"""Every service's ``/metrics`` (Prometheus text format) exposes what an operator needs.

All services: request count and latency by route template, method and status
(``prl_http_requests_total``, ``prl_http_request_duration_seconds``), in-flight requests,
refusals by reason, the draining gauge. Embedding: batcher queue depth, batch sizes, queue
wait. Reward: scoring failures by component and error code. Label values stay bounded under
hostile traffic (route templates, not raw paths; unknown methods folded into ``OTHER``).
"""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.services.reliability.helpers import in_process
from tests.services.service_apps import APPS

TRAFFIC = {
    "reward": [
        (
            "POST",
            "/v1/score",
            {
                "reward": "dig",
                "samples": [
                    {"id": "a", "completion": "no answer", "solution": {"boxes": [[1, 2, 3, 4]]}},
                    {
                        "id": "b",
                        "completion": "<answer>[[1,2,3,4]]</answer>",
                        "solution": {"boxes": [[1, 2, 3, 4]]},
                    },
                ],
            },
        ),
        ("POST", "/v1/score", {"reward": "nope", "samples": []}),
    ],
    "embedding": [("POST", "/v1/embed", {"texts": ["a", "b", "c"]})],
    "leaderboard": [("GET", "/v1/runs/12345", None), ("GET", "/v1/suites", None)],
    "trainer": [("GET", "/v1/jobs/12345", None), ("GET", "/v1/jobs", None)],
}
ROUTE = {
    "reward": ("/v1/score", {"200", "422"}),
    "embedding": ("/v1/embed", {"200"}),
    "leaderboard": ("/v1/runs/{run_id}", {"404"}),
    "trainer": ("/v1/jobs/{job_id}", {"404"}),
}


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    ]


@pytest.fixture(scope="module", params=sorted(APPS))
def scraped(request, tmp_path_factory):
    app = APPS[request.param](tmp_path_factory.mktemp(request.param))
    with in_process(app) as client:
        for method, path, body in TRAFFIC[request.param]:
            client.request(method, path, json=body)
        for i in range(30):  # scanners: random paths and methods
            client.request("GET", f"/wp-admin/{i}.php")
            client.request(f"X{i}", "/v1/anything")
        yield request.param, samples(client.get("/metrics").text)


def test_requests_by_route_method_status_and_latency(scraped):
    name, got = scraped
    route, statuses = ROUTE[name]
    seen = {
        s["status"] for n, s, v in got if n == "prl_http_requests_total" and s["route"] == route
    }
    assert statuses <= seen, seen
    hist = [
        (s, v)
        for n, s, v in got
        if n == "prl_http_request_duration_seconds_count" and s["route"] == route
    ]
    assert {s["status"] for s, _ in hist} >= statuses
    assert all(v >= 1 for _, v in hist)
    names = {n for n, _, _ in got}
    assert {"prl_http_in_flight", "prl_server_draining"} <= names


def test_labels_stay_bounded_under_scanning(scraped):
    _, got = scraped
    routes = {s["route"] for n, s, _ in got if n == "prl_http_requests_total"}
    methods = {s["method"] for n, s, _ in got if n == "prl_http_requests_total"}
    assert not any(re.search(r"\d+\.php|/wp-admin", r) for r in routes), routes
    assert "unmatched" in routes
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}
    assert "OTHER" in methods


def test_service_specific_metrics(scraped):
    name, got = scraped
    by_name: dict[str, list[tuple[dict, float]]] = {}
    for n, s, v in got:
        by_name.setdefault(n, []).append((s, v))
    if name == "embedding":
        assert "prl_embed_queue_depth" in by_name
        assert by_name["prl_embed_batch_size_count"][0][1] >= 1
        assert by_name["prl_embed_batch_size_sum"][0][1] >= 3  # three texts were embedded
        assert by_name["prl_embed_queue_wait_seconds_count"][0][1] >= 3
    elif name == "reward":
        failures = {(s["component"], s["code"]): v for s, v in by_name["prl_reward_failures_total"]}
        assert failures == {("answer", "no_answer"): 1.0}
    else:
        pytest.skip(f"{name} has only the common metrics")
