"""The embedding service fails during ``alignment`` scoring: dead port, a server that accepts
connections and never answers, a server answering 500, and one answering 200 with garbage.

Promise (services/reward/scoring/alignment.py, pipeline.py): the reward response carries an
explicit ``component_errors["alignment"]`` for every sample; ``alignment`` is absent from
``components`` (never a silent 0); the reward is aggregated over the components that were
computed, so it equals the reward of the same spec without ``alignment``; the failure is
counted in ``prl_reward_failures{component="alignment",code=…}``; never a 5xx.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from services.reward.app import create_app
from services.reward.settings import RewardSettings
from services.stack import free_port, serve_in_thread
from tests.services.reliability.helpers import in_process

GT = [[10, 10, 50, 50], [60, 60, 90, 90]]
ANSWERS = [
    "<answer>[[10,10,50,50],[60,60,90,90]]</answer>",  # f1 = 1
    "<answer>[[10,10,50,50]]</answer>",  # f1 = 2/3
    "<answer>[[70,10,80,20]]</answer>",  # f1 = 0 (no overlap)
]
F1 = [1.0, 2 / 3, 0.0]


def samples() -> list[dict]:
    return [
        {
            "id": f"s{i}",
            "completion": a,
            "solution": {"boxes": GT},
            "frame": {"coords": "pixel", "image_size": [100, 100]},
            "image": "img.png",
            "query": "find the squares",
        }
        for i, a in enumerate(ANSWERS)
    ]


def spec(*names: str) -> dict:
    return {"components": [{"name": n} for n in names], "aggregate": {"method": "sum"}}


@contextlib.contextmanager
def hanging_server() -> Iterator[str]:
    """Accepts TCP connections and never answers (until closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(sock.accept()[0])

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        t.join(2)
        for c in held:
            c.close()
        sock.close()


def broken_embedding(status: int, body: str) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/alignment")
    async def alignment() -> PlainTextResponse:
        return PlainTextResponse(body, status_code=status, media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> dict:
        return {}

    return app


@contextlib.contextmanager
def embedding_at(kind: str) -> Iterator[tuple[str, set[str]]]:
    """(URL of a failing embedding service, the alignment error codes it may cause)."""
    if kind == "dead port":
        yield f"http://127.0.0.1:{free_port()}", {"embedding_unavailable"}
    elif kind == "hangs":
        with hanging_server() as url:
            yield url, {"embedding_unavailable"}
    elif kind == "answers 500":
        with serve_in_thread(broken_embedding(500, '{"error":{"message":"boom"}}')) as url:
            yield url, {"embedding_error"}
    elif kind == "200 garbage":
        with serve_in_thread(broken_embedding(200, '{"results": "nope"}')) as url:
            yield url, {"component_failed", "embedding_error"}
    else:  # 200 with the wrong number of results
        body = '{"model":"m","dim":2,"params":{},"reward_range":[0,1],"results":[]}'
        with serve_in_thread(broken_embedding(200, body)) as url:
            yield url, {"component_failed", "embedding_error"}


@pytest.mark.parametrize("kind", ["dead port", "hangs", "answers 500", "200 garbage", "short"])
def test_alignment_failure_is_explicit_and_never_a_wrong_reward(kind):
    with embedding_at(kind) as (url, codes):
        settings = RewardSettings(embedding_url=url, embedding_timeout_s=0.5)
        with in_process(create_app(settings)) as client:
            both = client.post(
                "/v1/score", json={"reward": spec("alignment", "f1"), "samples": samples()}
            )
            alone = client.post(
                "/v1/score", json={"reward": spec("alignment"), "samples": samples()}
            )
            metrics = client.get("/metrics").text
    assert both.status_code == 200 and alone.status_code == 200, (both.text, alone.text)
    for res, f1 in zip(both.json()["results"], F1, strict=True):
        err = res["component_errors"]["alignment"]
        assert err["code"] in codes, err
        assert err["message"]
        assert "alignment" not in res["components"]  # missing, not a fake 0
        assert res["components"]["f1"] == pytest.approx(f1)
        assert res["reward"] == pytest.approx(f1)  # = the spec without alignment
    for res in alone.json()["results"]:
        assert res["reward"] == 0.0
        assert res["error"]["code"] == "no_components"
        assert res["component_errors"]["alignment"]["code"] in codes
    failures = [
        line
        for line in metrics.splitlines()
        if line.startswith("prl_reward_failures_total{") and 'component="alignment"' in line
    ]
    assert failures and sum(float(line.rsplit(" ", 1)[1]) for line in failures) == 6.0


def test_reward_readiness_names_the_embedding_dependency_when_configured():
    """With ``PRL_REWARD_READY_COMPONENTS=["alignment"]`` a dead embedding service makes the
    reward service not ready (so a balancer stops routing alignment work to it)."""
    url = f"http://127.0.0.1:{free_port()}"
    settings = RewardSettings(embedding_url=url, ready_components=["alignment"])
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings)) as client:
        r = client.get("/readyz")
    assert r.status_code == 503
    assert "component:alignment" in r.json()["failing"]
