"""Typed sync + async SDK over httpx for the perception-rl services, and trainer adapters.

Needs only httpx + pydantic (``pip install perception-rl[client]``)::

    from clients import RewardClient
    with RewardClient("http://127.0.0.1:8001") as rc:
        rc.score(samples, reward="dig")

Adapters for external trainers live in :mod:`clients.adapters` (TRL, verl, EasyR1, OpenRLHF).
"""

from clients.embedding import AsyncEmbeddingClient, EmbeddingClient
from clients.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    GatewayTimeoutError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PRLClientError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from clients.leaderboard import AsyncLeaderboardClient, LeaderboardClient
from clients.retry import RetryPolicy
from clients.reward import AsyncRewardClient, RewardClient
from clients.trainer import AsyncTrainerClient, TrainerClient

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncEmbeddingClient",
    "AsyncLeaderboardClient",
    "AsyncRewardClient",
    "AsyncTrainerClient",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "EmbeddingClient",
    "GatewayTimeoutError",
    "LeaderboardClient",
    "NotFoundError",
    "PRLClientError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseValidationError",
    "RetryPolicy",
    "RewardClient",
    "ServerError",
    "ServiceUnavailableError",
    "TrainerClient",
    "UnprocessableEntityError",
]
