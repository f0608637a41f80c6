"""Retry policy: which failures are retried and how long to wait (pure functions).

Semantics follow openai-python (``_base_client.py``: retries on connection errors, 408, 409,
429 and ≥500; exponential backoff from 0.5 s capped at 8 s with jitter; ``Retry-After``
honoured up to a cap) with project rules: a 4xx client error (400, 401, 403, 404, 413, 422)
is never retried, nor by default is 409 (see :data:`RETRYABLE_STATUSES`). The wait before
retry ``n`` (0-based) is

    delay_n = Retry-After                                if the server sent one (≤ cap)
    delay_n = min(max_backoff, initial · 2ⁿ) · (1 − jitter · U),   U ~ Uniform[0, 1)

so ``delay_n ∈ [(1 − jitter)·b_n, b_n]`` with ``b_n = min(max_backoff, initial · 2ⁿ)``.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import dataclass, field

from clients.errors import APIConnectionError, APIStatusError, PRLClientError

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""409 is not here (openai-python retries it): our services answer 409 for a lasting conflict
with stored data (leaderboard), which a retry cannot fix. Add it to ``retry_statuses`` for a
server whose 409 means "same Idempotency-Key still in progress"."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries.

    ``max_retries`` retries after the first attempt (so at most ``max_retries + 1`` requests);
    ``max_retry_after_s`` caps how long a server's ``Retry-After`` may make us wait.
    """

    max_retries: int = 3
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    jitter: float = 0.25
    max_retry_after_s: float = 60.0
    retry_statuses: frozenset[int] = field(default=RETRYABLE_STATUSES)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be in [0, 1]")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("backoff times must be >= 0")


NO_RETRY = RetryPolicy(max_retries=0)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds asked by a ``Retry-After`` header: delta-seconds or an HTTP-date; None if absent/bad.

    >>> parse_retry_after("2")
    2.0
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter before retry ``attempt`` (0-based); see module docstring."""
    base = min(policy.max_backoff_s, policy.initial_backoff_s * (2.0**attempt))
    u = (rng or random).random()
    return base * (1.0 - policy.jitter * u)


def is_retryable(error: PRLClientError, policy: RetryPolicy) -> bool:
    """Connection errors and timeouts, and the statuses of ``policy.retry_statuses``."""
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, APIStatusError):
        return error.status_code in policy.retry_statuses
    return False


def retry_delay(
    error: PRLClientError, attempt: int, policy: RetryPolicy, rng: random.Random | None = None
) -> float | None:
    """Seconds to wait before retrying after ``error`` on attempt ``attempt`` (0-based), or None.

    None means "do not retry": the error is not retryable or the retries are used up.
    """
    if attempt >= policy.max_retries or not is_retryable(error, policy):
        return None
    asked = error.retry_after if isinstance(error, APIStatusError) else None
    if asked is not None:
        return min(asked, policy.max_retry_after_s)
    return backoff_delay(policy, attempt, rng)
