"""docker-compose.yml as a contract (no Docker engine runs here).

It parses; every service's command is a real ``prl`` command; every PRL_ variable is a known
setting of that service; ports, healthcheck paths and volumes agree; images build from
Dockerfiles that exist and install the right extras; no default secrets.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from services.cli import load_commands
from services.cli.base import app as cli_app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = {k: v for k, v in SERVICES.items() if k != "postgres"}

# settings modules whose classes define the PRL_* variables a container may set
SETTINGS_MODULES = [
    "services.reward.settings",
    "services.embedding.settings",
    "services.leaderboard.settings",
    "services.store.db",
    "trainer.service",
]


def known_env_vars() -> set[str]:
    names: set[str] = set()
    for mod_name in SETTINGS_MODULES:
        mod = importlib.import_module(mod_name)
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings:
                prefix = obj.model_config.get("env_prefix", "")
                names.update(f"{prefix}{f}".upper() for f in obj.model_fields)
    return names


def _env(svc: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (svc.get("environment") or {}).items() if k != "<<"}


def test_compose_parses_with_expected_services():
    assert {"postgres", "reward", "embedding", "leaderboard", "trainer", "bench"} <= set(SERVICES)
    assert SERVICES["bench"]["profiles"] == ["bench"]


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_command_is_a_real_prl_command(name):
    cmd = APP_SERVICES[name]["command"]
    assert cmd[0] == "prl"
    words = [w for w in cmd[1:] if not w.startswith("-")][:2]
    load_commands()
    result = CliRunner().invoke(cli_app, [*words, "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_prl_variable_is_a_known_setting(name):
    known = known_env_vars()
    env = _env(APP_SERVICES[name])
    for anchor in COMPOSE.get("x-prl-env", {}):
        env.setdefault(anchor, "")
    unknown = sorted(k for k in env if k.startswith("PRL_") and k not in known)
    assert not unknown, f"{name}: unknown settings {unknown}"


@pytest.mark.parametrize("name", ["reward", "embedding", "leaderboard", "trainer"])
def test_ports_and_healthcheck_agree(name):
    svc = SERVICES[name]
    cmd = svc["command"]
    port = cmd[cmd.index("--port") + 1]
    assert svc["ports"] == [f"{port}:{port}"]
    probe = " ".join(svc["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/readyz" in probe
    assert "--host" in cmd and cmd[cmd.index("--host") + 1] == "0.0.0.0"


def test_depends_on_only_healthy_services():
    for name, svc in SERVICES.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond == {"condition": "service_healthy"}, name
            assert "healthcheck" in SERVICES[dep], (
                f"{name} waits on {dep}, which has no healthcheck"
            )


def test_volumes_are_declared():
    declared = set(COMPOSE.get("volumes", {}))
    for name, svc in SERVICES.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if not src.startswith(("/", ".", "$")):
                assert src in declared, f"{name} uses undeclared volume {src}"


def test_gpu_services_reserve_devices():
    for name in ("embedding", "trainer"):
        devices = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]


def test_no_default_secrets():
    text = (ROOT / "docker-compose.yml").read_text()
    for var, default in re.findall(r"\$\{(\w+):-([^}]*)\}", text):
        assert not re.search(r"PASSWORD|SECRET|KEY", var), f"{var} has a default ({default!r})"
    for name, svc in APP_SERVICES.items():
        env = _env(svc)
        if name != "bench":
            assert any(k.endswith("_PROFILE") and v == "prod" for k, v in env.items()), name


def test_images_build_from_existing_dockerfiles_with_right_extras():
    extras = {"docker/Dockerfile.cpu": "'.[store]'", "docker/Dockerfile.cuda": "'.[ml]'"}
    for name, svc in APP_SERVICES.items():
        dockerfile = svc["build"]["dockerfile"]
        text = (ROOT / dockerfile).read_text()
        assert extras[dockerfile] in text, f"{name}: {dockerfile} installs the wrong extra"
        assert re.search(r"^USER \w+", text, re.M), f"{dockerfile} runs as root"
        assert text.count("FROM ") >= 2, f"{dockerfile} is not multi-stage"
    assert SERVICES["reward"]["build"]["dockerfile"] == "docker/Dockerfile.cpu"
    assert SERVICES["leaderboard"]["build"]["dockerfile"] == "docker/Dockerfile.cpu"


def test_cpu_image_services_import_without_torch():
    code = (
        "import sys; import services.reward.app, services.leaderboard.app; "
        "bad = [m for m in ('torch', 'transformers', 'trl') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_compose_runs_every_catalog_service_on_its_documented_port():
    from services.common.catalog import SERVICES as CATALOG

    for name, info in CATALOG.items():
        cmd = SERVICES[name]["command"]
        assert cmd[:3] == ["prl", "serve", name]
        assert int(cmd[cmd.index("--port") + 1]) == info.port
    assert set(APP_SERVICES) - set(CATALOG) == {"bench"}  # the one-shot benchmark job
