"""RewardClient / AsyncRewardClient against a live fault-injecting fake server (uvicorn)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from clients.errors import (
    APIConnectionError,
    APITimeoutError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from clients.retry import RetryPolicy
from clients.reward import AsyncRewardClient, RewardClient, batch_stats
from tests.clients.prl_client_fakes import Fault

GOOD = "<think>t</think> <answer>[1, 2, 3, 4]</answer>"
BAD = "no answer"
SOL = {"boxes": [[1, 2, 3, 4]]}


def samples(n: int) -> list[dict]:
    return [
        {"id": f"s{i}", "completion": GOOD if i % 3 else BAD, "solution": SOL} for i in range(n)
    ]


def client(url: str, waits: list[float] | None = None, **kw) -> RewardClient:
    sleep = waits.append if waits is not None else (lambda s: None)
    kw.setdefault("retry", RetryPolicy(max_retries=3, initial_backoff_s=0.01, max_backoff_s=0.02))
    return RewardClient(url, sleep=sleep, discover_limits=kw.pop("discover", True), **kw)


def test_score_round_trip_typed(fake):
    with client(fake.url) as rc:
        out = rc.score(samples(4), reward="dig")
    assert [r.id for r in out.results] == ["s0", "s1", "s2", "s3"]
    assert [r.reward for r in out.results] == [0.0, 1.0, 1.0, 0.0]
    assert out.results[1].components == {"format": 1.0}
    sent = json.loads(fake.state.calls("/v1/score")[0]["body"])
    assert sent["reward"] == "dig" and sent["samples"][0]["solution"] == SOL
    assert "image" not in sent["samples"][0]  # None fields are not sent


def test_503_with_retry_after_is_retried_with_same_keys(fake):
    fake.state.inject("/v1/score", Fault(503, retry_after="2"), Fault(503, retry_after="1"))
    waits: list[float] = []
    with client(fake.url, waits) as rc:
        out = rc.score(samples(2), reward="dig")
    assert len(out.results) == 2
    calls = fake.state.calls("/v1/score")
    assert len(calls) == 3
    assert waits == [2.0, 1.0]  # exactly what the server asked for
    keys = {c["headers"]["idempotency-key"] for c in calls}
    rids = {c["headers"]["x-request-id"] for c in calls}
    assert len(keys) == 1 and len(rids) == 1
    assert [c["headers"]["x-prl-retry-count"] for c in calls] == ["0", "1", "2"]


def test_429_then_success_and_exhaustion_raises_typed_error(fake):
    fake.state.inject("/v1/score", Fault(429, retry_after="0"))
    with client(fake.url) as rc:
        assert len(rc.score(samples(1), reward="dig").results) == 1
        fake.state.inject("/v1/score", *[Fault(429, retry_after="0")] * 4)
        with pytest.raises(RateLimitError) as info:
            rc.score(samples(1), reward="dig")
    assert info.value.attempts == 4 and info.value.request_id


def test_500_is_retried_then_surfaces_with_request_id(fake):
    fake.state.inject("/v1/score", *[Fault(500, code="internal")] * 4)
    waits: list[float] = []
    with client(fake.url, waits) as rc, pytest.raises(ServerError) as info:
        rc.score(samples(1), reward="dig")
    err = info.value
    assert err.status_code == 500 and err.code == "internal" and err.attempts == 4
    assert len(waits) == 3 and all(0.0 < w <= 0.02 for w in waits)
    sent_id = fake.state.calls("/v1/score")[0]["headers"]["x-request-id"]
    assert err.request_id == sent_id


def test_request_id_read_from_error_body_when_header_missing(fake):
    fake.state.inject("/v1/score", Fault(422, request_id_in_body="body-rid"))
    with client(fake.url) as rc, pytest.raises(UnprocessableEntityError) as info:
        rc.score(samples(1), reward="dig")
    assert info.value.request_id == "body-rid"


def test_invalid_request_is_refused_before_sending(fake):
    from pydantic import ValidationError

    with client(fake.url) as rc, pytest.raises(ValidationError, match="components"):
        rc.score([{"id": "a", "completion": "x", "solution": SOL}], reward={"nope": 1})
    with client(fake.url) as rc, pytest.raises(ValidationError, match="image_size"):
        rc.score(
            [{"id": "a", "completion": "x", "solution": SOL, "frame": {"coords": "norm1000"}}],
            reward="dig",
        )
    assert fake.state.calls("/v1/score") == []


def test_server_side_422_single_request(fake):
    fake.state.inject("/v1/score", Fault(422, code="validation_error"))
    waits: list[float] = []
    with client(fake.url, waits) as rc, pytest.raises(UnprocessableEntityError):
        rc.score(samples(1), reward="dig")
    assert len(fake.state.calls("/v1/score")) == 1 and waits == []


def test_server_down_raises_connection_error_after_retries(dead_url):
    waits: list[float] = []
    with client(dead_url, waits, discover=False) as rc, pytest.raises(APIConnectionError) as info:
        rc.score(samples(1), reward="dig")
    assert info.value.attempts == 4 and len(waits) == 3
    assert not isinstance(info.value, APITimeoutError)


def test_slow_server_times_out(fake):
    fake.state.inject("/v1/score", Fault(0, delay_s=1.0), Fault(0, delay_s=1.0))
    retry = RetryPolicy(max_retries=1, initial_backoff_s=0.0)
    with client(fake.url, timeout=0.2, retry=retry, discover=False) as rc:
        t0 = time.monotonic()
        with pytest.raises(APITimeoutError) as info:
            rc.score(samples(1), reward="dig")
    assert info.value.attempts == 2 and time.monotonic() - t0 < 1.5


def test_chunks_follow_server_limits_and_keep_order(fake):
    fake.state.limits = {"max_samples": 3}
    with client(fake.url) as rc:
        out = rc.score(samples(10), reward="dig")
    assert [r.id for r in out.results] == [f"s{i}" for i in range(10)]
    calls = fake.state.calls("/v1/score")
    assert [len(json.loads(c["body"])["samples"]) for c in calls] == [3, 3, 3, 1]
    assert len({c["headers"]["idempotency-key"] for c in calls}) == 4


def test_configured_chunk_size_when_server_has_no_limits(fake):
    with client(fake.url, chunk_size=4) as rc:
        rc.score(samples(9), reward="dig")
    assert [len(json.loads(c["body"])["samples"]) for c in fake.state.calls("/v1/score")] == [
        4,
        4,
        1,
    ]


def test_body_limit_chunking_and_413_split(fake):
    one = len(json.dumps(samples(1)[0], separators=(",", ":")))
    fake.state.max_body_bytes = 60 + 3 * one  # about three samples per body
    with client(fake.url, discover=False) as rc:  # client does not know the limit: 413 → split
        out = rc.score(samples(8), reward="dig")
    assert [r.id for r in out.results] == [f"s{i}" for i in range(8)]
    ok = [c for c in fake.state.calls("/v1/score") if len(c["body"]) <= fake.state.max_body_bytes]
    assert sum(len(json.loads(c["body"])["samples"]) for c in ok) == 8
    fake.state.log.clear()
    with client(fake.url, discover=False, max_body_bytes=fake.state.max_body_bytes) as rc:
        rc.score(samples(8), reward="dig")  # client knows the limit: no 413 at all
    assert all(len(c["body"]) <= fake.state.max_body_bytes for c in fake.state.calls("/v1/score"))


def test_score_groups_merges_slices_and_recomputes_stats(fake):
    groups = [
        {"id": f"g{k}", "solution": SOL, "completions": [GOOD] * (k % 2 + 1) + [BAD] * k}
        for k in range(5)
    ]
    with client(fake.url) as rc:
        whole = rc.score_groups(groups, reward="dig")
    fake.state.limits = {"max_samples": 5}  # the service counts completions, not groups
    with client(fake.url) as rc:
        split = rc.score_groups(groups, reward="dig")
        bodies = [json.loads(c["body"]) for c in fake.state.calls("/v1/score/groups")[1:]]
        sizes = [sum(len(g["completions"]) for g in b["groups"]) for b in bodies]
        assert sizes == [4, 3, 5, 5]
        assert [g.id for g in split.groups] == [g.id for g in whole.groups]
        assert split.stats.model_dump() == pytest.approx(whole.stats.model_dump())
        assert batch_stats(whole.groups).model_dump() == pytest.approx(whole.stats.model_dump())
        with pytest.raises(ValueError, match="whole batch"):
            rc.score_groups(groups, reward="dig", advantage="batch")


def test_auth_header_and_idempotency_key_only_on_writes(fake):
    with client(fake.url, api_key="k1") as rc:
        rc.score(samples(1), reward="dig")
        assert rc.healthz()
    post, get = fake.state.calls("/v1/score")[0], fake.state.calls("/healthz")[0]
    assert post["headers"]["authorization"] == "Bearer k1"
    assert "idempotency-key" in post["headers"] and "idempotency-key" not in get["headers"]


def test_async_client_retries_and_chunks_concurrently(fake):
    fake.state.limits = {"max_samples": 2}
    fake.state.inject("/v1/score", Fault(503, retry_after="0"))
    waits: list[float] = []

    async def go():
        async def sleep(s):
            waits.append(s)

        async with AsyncRewardClient(fake.url, sleep=sleep, max_concurrent_chunks=3) as rc:
            return await rc.score(samples(7), reward="dig")

    out = asyncio.run(go())
    assert [r.id for r in out.results] == [f"s{i}" for i in range(7)]
    assert waits == [0.0] and len(fake.state.calls("/v1/score")) == 5


def test_async_client_typed_errors(fake, dead_url):
    fake.state.inject("/v1/score", *[Fault(503)] * 2)

    async def go(url, **kw):
        async def sleep(s):
            pass

        retry = RetryPolicy(max_retries=1, initial_backoff_s=0)
        async with AsyncRewardClient(url, sleep=sleep, retry=retry, **kw) as rc:
            return await rc.score(samples(1), reward="dig")

    with pytest.raises(ServiceUnavailableError) as info:
        asyncio.run(go(fake.url))
    assert info.value.attempts == 2
    with pytest.raises(APIConnectionError):
        asyncio.run(go(dead_url, discover_limits=False))
