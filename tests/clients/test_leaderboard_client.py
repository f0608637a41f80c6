"""LeaderboardClient against the real leaderboard service (`prl serve leaderboard`)."""

from __future__ import annotations

import pytest

from clients.errors import AuthenticationError, NotFoundError, UnprocessableEntityError
from clients.leaderboard import LeaderboardClient
from tests.clients.prl_client_fakes import start_service, stop_service

KEY = "prl-dev-key"


@pytest.fixture(scope="module")
def leaderboard(tmp_path_factory):
    db = tmp_path_factory.mktemp("lb") / "lb.db"
    proc, url = start_service("leaderboard", {"PRL_LEADERBOARD_DATABASE_URL": f"sqlite:///{db}"})
    yield url
    stop_service(proc)


def run_body(model: str, f1: float) -> dict:
    return {
        "model": {"name": model},
        "suite": {"name": "dig-mini", "version": "1", "content_hash": "abc123"},
        "config": {"temperature": 0.0},
        "seed": 0,
        "predictions": [
            {"sample_id": f"s{i}", "prediction": "<answer>[]</answer>", "reward": 1.0}
            for i in range(3)
        ],
        "metrics": [{"name": "f1", "value": f1}],
    }


def test_upload_is_idempotent_and_shows_on_the_leaderboard(leaderboard):
    with LeaderboardClient(leaderboard, api_key=KEY) as lb:
        first = lb.upload_run(run_body("model-a", 0.7), idempotency_key="upload-a-1")
        replay = lb.upload_run(run_body("model-a", 0.7), idempotency_key="upload-a-1")
        assert first.created and replay.id == first.id
        assert replay.predictions_total == first.predictions_total == 3
        lb.upload_run(run_body("model-b", 0.9))
        board = lb.leaderboard("dig-mini", "f1")
        assert [e.model for e in board.entries] == ["model-b", "model-a"]
        assert [e.rank for e in board.entries] == [1, 2]
        assert any(s.name == "dig-mini" for s in lb.suites().suites)
        runs = list(lb.iter_runs(suite="dig-mini", limit=1))
        assert sorted(r.model for r in runs) == ["model-a", "model-b"]
        assert lb.run(first.id).key == first.key


def test_reused_key_with_another_body_is_a_422_not_retried(leaderboard):
    with LeaderboardClient(leaderboard, api_key=KEY) as lb:
        lb.upload_run(run_body("model-c", 0.1), idempotency_key="k-c")
        with pytest.raises(UnprocessableEntityError) as info:
            lb.upload_run(run_body("model-c", 0.2), idempotency_key="k-c")
        assert info.value.attempts == 1 and info.value.request_id


def test_write_needs_a_key_and_unknown_run_is_404(leaderboard):
    with LeaderboardClient(leaderboard, api_key="") as lb:
        with pytest.raises(AuthenticationError):
            lb.upload_run(run_body("model-d", 0.5))
        with pytest.raises(NotFoundError):
            lb.run(987654)
