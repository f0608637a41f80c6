"""Retry policy: which failures retry, and the backoff / Retry-After waits."""

from __future__ import annotations

import email.utils
import random

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clients.errors import (
    APIConnectionError,
    APITimeoutError,
    ResponseValidationError,
    error_class,
)
from clients.retry import RetryPolicy, backoff_delay, parse_retry_after, retry_delay


def _status(code: int, retry_after: float | None = None):
    return error_class(code)("x", status_code=code, retry_after=retry_after)


def test_parse_retry_after_seconds_date_and_garbage():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(7.0)


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 413, 422])
def test_client_errors_are_never_retried(code):
    assert retry_delay(_status(code), 0, RetryPolicy()) is None


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_retry_until_exhausted(code):
    policy = RetryPolicy(max_retries=2)
    assert retry_delay(_status(code), 0, policy) is not None
    assert retry_delay(_status(code), 1, policy) is not None
    assert retry_delay(_status(code), 2, policy) is None


def test_connection_errors_retry_and_schema_mismatch_does_not():
    policy = RetryPolicy()
    assert retry_delay(APIConnectionError("down"), 0, policy) is not None
    assert retry_delay(APITimeoutError("slow"), 0, policy) is not None
    assert retry_delay(ResponseValidationError("bad body"), 0, policy) is None


def test_retry_after_is_honoured_and_capped():
    policy = RetryPolicy(max_retry_after_s=5.0)
    assert retry_delay(_status(503, retry_after=2.0), 0, policy) == 2.0
    assert retry_delay(_status(429, retry_after=0.0), 0, policy) == 0.0
    assert retry_delay(_status(429, retry_after=300.0), 0, policy) == 5.0


@given(
    attempt=st.integers(0, 20),
    initial=st.floats(0.01, 2.0),
    cap=st.floats(0.01, 30.0),
    jitter=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_backoff_is_capped_exponential_with_bounded_jitter(attempt, initial, cap, jitter, seed):
    policy = RetryPolicy(initial_backoff_s=initial, max_backoff_s=cap, jitter=jitter)
    d = backoff_delay(policy, attempt, random.Random(seed))
    base = min(cap, initial * 2**attempt)
    assert (1 - jitter) * base - 1e-12 <= d <= base + 1e-12


def test_backoff_without_jitter_doubles_then_caps():
    policy = RetryPolicy(initial_backoff_s=0.5, max_backoff_s=3.0, jitter=0.0)
    assert [backoff_delay(policy, n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)


def test_status_error_carries_request_id_from_header_then_body_then_sent():
    from clients.errors import ServiceUnavailableError, UnprocessableEntityError, make_status_error

    req = httpx.Request("POST", "http://x/v1/score")
    body = {
        "error": {"code": "validation_error", "message": "samples[3].frame: bad", "request_id": "b"}
    }
    r = httpx.Response(422, json=body, headers={"x-request-id": "h"}, request=req)
    err = make_status_error(r, sent_request_id="s")
    assert isinstance(err, UnprocessableEntityError)
    assert (err.request_id, err.code, err.message) == (
        "h",
        "validation_error",
        "samples[3].frame: bad",
    )
    assert make_status_error(httpx.Response(422, json=body, request=req)).request_id == "b"
    plain = httpx.Response(503, text="busy", request=req)
    err = make_status_error(plain, sent_request_id="s")
    assert isinstance(err, ServiceUnavailableError) and err.request_id == "s"
    assert err.message == "busy" and "request_id=s" in str(err)
    fastapi_style = httpx.Response(404, json={"detail": "Not Found"}, request=req)
    assert make_status_error(fastapi_style).message == "Not Found"
