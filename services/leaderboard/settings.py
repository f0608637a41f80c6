"""``PRL_LEADERBOARD_*`` settings; the database is ``PRL_LEADERBOARD_DATABASE_URL`` or
``PRL_DATABASE_URL`` (default: the SQLite file of :mod:`services.store.db`)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.common.catalog import default_port
from services.common.settings import ServiceSettings
from services.store.db import default_database_url


class LeaderboardSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PRL_LEADERBOARD_", extra="ignore", frozen=True)

    port: int = Field(
        default=default_port("leaderboard"),
        ge=0,
        le=65535,
        description="TCP port (0: any free port)",
    )
    database_url: str = Field(
        default_factory=default_database_url,
        validation_alias=AliasChoices(
            "database_url", "PRL_LEADERBOARD_DATABASE_URL", "PRL_DATABASE_URL"
        ),
        description="SQLAlchemy URL of the result store (PRL_LEADERBOARD_DATABASE_URL or "
        "PRL_DATABASE_URL; default: the SQLite file .prl/store.db)",
    )
    auto_migrate: bool = Field(
        default=True, description="run `prl db upgrade` at startup (off: readiness fails instead)"
    )
    idempotency_ttl_s: float = Field(
        default=7 * 24 * 3600, gt=0, description="stored Idempotency-Key responses live this long"
    )
    max_page: int = Field(default=500, ge=1, description="largest page size a list may ask for")
