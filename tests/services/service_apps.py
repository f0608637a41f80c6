"""Every service app, built for tests with throwaway state (SQLite files, tiny models)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI


def reward_app(tmp: Path) -> FastAPI:
    from services.reward.app import create_app
    from services.reward.settings import RewardSettings

    return create_app(RewardSettings())


def embedding_app(tmp: Path) -> FastAPI:
    from services.embedding.app import create_app
    from services.embedding.settings import EmbeddingSettings
    from services.embedding.tiny import build_tiny_encoder

    model = tmp / "clip"
    if not (model / "config.json").exists():
        build_tiny_encoder("clip", model, seed=0)
    return create_app(EmbeddingSettings(model_dir=model, data_root=tmp))


def leaderboard_app(tmp: Path) -> FastAPI:
    from services.leaderboard.app import create_app
    from services.leaderboard.settings import LeaderboardSettings

    return create_app(LeaderboardSettings(database_url=f"sqlite:///{tmp / 'lb.db'}"))


def trainer_app(tmp: Path) -> FastAPI:
    from trainer.service import TrainerServiceSettings, create_app

    return create_app(
        TrainerServiceSettings(runs_dir=tmp / "runs"), database_url=f"sqlite:///{tmp / 'tr.db'}"
    )


APPS: dict[str, Callable[[Path], FastAPI]] = {
    "reward": reward_app,
    "embedding": embedding_app,
    "leaderboard": leaderboard_app,
    "trainer": trainer_app,
}

# Routes that answer without a key by design (probes, schema, docs, the web page and its assets).
PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}

# Routes that change state: each must demand a write-scoped key.
WRITES = {("POST", "/v1/runs"), ("POST", "/v1/jobs"), ("POST", "/v1/jobs/{job_id}/cancel")}
