"""The services of the stack, listed once.

``prl serve`` (one command per entry), ``prl up`` / :class:`services.stack.LocalStack` (start
order, default ports), each service's ``port`` setting and the SDK clients' default URLs all
read this table; ``tests/deploy/test_compose.py`` holds docker-compose.yml to it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceInfo:
    """One service: its ``prl serve`` name, uvicorn factory, settings prefix and default port."""

    name: str
    factory: str
    """uvicorn factory, ``module:function`` returning the FastAPI app."""
    env_prefix: str
    """prefix of its settings' environment variables (``PRL_REWARD_PORT``, …)."""
    port: int
    """documented default port."""
    summary: str


SERVICES: dict[str, ServiceInfo] = {
    s.name: s
    for s in (
        ServiceInfo(
            "embedding",
            "services.embedding.app:create_app",
            "PRL_EMBEDDING_",
            8002,
            "image/text embeddings for the DEVA alignment reward",
        ),
        ServiceInfo(
            "reward", "services.reward.app:create_app", "PRL_REWARD_", 8001, "exact rewards"
        ),
        ServiceInfo(
            "leaderboard",
            "services.leaderboard.app:create_app",
            "PRL_LEADERBOARD_",
            8003,
            "results REST API and web page",
        ),
        ServiceInfo(
            "trainer", "trainer.service:create_app", "PRL_TRAINER_", 8004, "training job API"
        ),
    )
}
"""Every service, in start order (a service's dependencies come before it)."""

SERVICE_NAMES: tuple[str, ...] = tuple(SERVICES)
DEFAULT_PORTS: dict[str, int] = {name: s.port for name, s in SERVICES.items()}


def default_port(name: str) -> int:
    """The documented port of service ``name``."""
    return SERVICES[name].port
