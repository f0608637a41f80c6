"""The service list is written once (``services.common.catalog``); everything else follows it."""

from __future__ import annotations

import importlib
import inspect

import pytest

from clients.embedding import EmbeddingClient
from clients.leaderboard import LeaderboardClient
from clients.reward import RewardClient
from clients.trainer import TrainerClient
from services.cli import load_commands
from services.cli.base import serve_app
from services.cli.up import up
from services.common.catalog import DEFAULT_PORTS, SERVICE_NAMES, SERVICES
from services.embedding.settings import EmbeddingSettings
from services.leaderboard.settings import LeaderboardSettings
from services.reward.settings import RewardSettings
from services.stack import DEFAULT_SERVICES, default_specs

SETTINGS = {
    "embedding": EmbeddingSettings,
    "reward": RewardSettings,
    "leaderboard": LeaderboardSettings,
}
CLIENTS = {
    "embedding": EmbeddingClient,
    "reward": RewardClient,
    "leaderboard": LeaderboardClient,
    "trainer": TrainerClient,
}


def test_prl_serve_has_one_command_per_service():
    load_commands()
    assert sorted(c.name for c in serve_app.registered_commands) == sorted(SERVICE_NAMES)


def test_prl_up_and_the_stack_cover_every_service_with_its_port(tmp_path):
    params = inspect.signature(up).parameters
    ports = {
        n.removesuffix("_port"): p.default.default for n, p in params.items() if n.endswith("_port")
    }
    assert ports == DEFAULT_PORTS
    assert params["services"].default.default.split(",") == list(SERVICE_NAMES)
    assert DEFAULT_SERVICES == SERVICE_NAMES
    specs = default_specs(tmp_path, ports=DEFAULT_PORTS)
    assert [(s.name, s.port) for s in specs] == list(DEFAULT_PORTS.items())


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_settings_prefix_and_port_follow_the_catalog(name, monkeypatch):
    info = SERVICES[name]
    monkeypatch.delenv(f"{info.env_prefix}PORT", raising=False)
    cls = SETTINGS[name]
    assert cls.model_config["env_prefix"] == info.env_prefix
    assert cls().port == info.port


def test_trainer_settings_follow_the_catalog(monkeypatch):
    from trainer.service import TrainerServiceSettings

    monkeypatch.delenv("PRL_TRAINER_PORT", raising=False)
    assert TrainerServiceSettings.model_config["env_prefix"] == SERVICES["trainer"].env_prefix
    assert TrainerServiceSettings().port == SERVICES["trainer"].port


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_factory_resolves_and_client_default_url_uses_the_port(name):
    module, attr = SERVICES[name].factory.split(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert CLIENTS[name].default_url == f"http://127.0.0.1:{SERVICES[name].port}"
