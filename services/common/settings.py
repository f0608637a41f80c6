"""Settings shared by every service (pydantic-settings; environment variables ``PRL_*``).

Each service subclasses :class:`ServiceSettings` with its own prefix, e.g. ``PRL_REWARD_``:
``PRL_REWARD_PORT=8001 PRL_REWARD_MAX_BODY_BYTES=…``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Scope = Literal["read", "write", "admin"]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRL_", extra="ignore", frozen=True)

    host: str = Field(
        default="127.0.0.1", description="interface to listen on (0.0.0.0: every interface)"
    )
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0: any free port)")
    workers: int = Field(
        default=1, ge=1, le=64, description="uvicorn worker processes sharing the port"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="level of the service's and uvicorn's logs"
    )
    profile: Literal["dev", "prod"] = Field(
        default="dev", description="'prod' refuses to start without API keys for writes"
    )

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description="413 above this")
    max_concurrency: int = Field(
        default=512, ge=1, description="requests in flight per worker before fast 503 + Retry-After"
    )
    request_timeout_s: float = Field(default=60.0, gt=0, description="504 after this")
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After sent with 503/429")
    drain_s: float = Field(
        default=10.0, ge=0, description="after the drain delay, how long in-flight requests may run"
    )
    drain_delay_s: float = Field(
        default=1.0,
        ge=0,
        le=300,
        description="after SIGTERM, keep accepting and answer 503 draining for this long before "
        "closing the listener (set it to the load balancer's readiness period)",
    )

    api_keys: dict[str, list[Scope]] = Field(
        default_factory=dict,
        description='bearer keys and their scopes, JSON: {"<key>": ["read", "write"]}',
    )
    auth_read: bool = Field(default=False, description="require a read-scoped key on read routes")

    @model_validator(mode="after")
    def _no_open_writes_in_prod(self) -> ServiceSettings:
        if self.profile == "prod" and not any("write" in s for s in self.api_keys.values()):
            raise ValueError(
                "api_keys: profile 'prod' needs at least one write-scoped key "
                '(set PRL_..._API_KEYS=\'{"<secret>": ["read", "write"]}\')'
            )
        return self
