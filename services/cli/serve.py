"""``prl serve reward|embedding|leaderboard|trainer``."""

from __future__ import annotations

import os

import typer

from services.cli._store import db_option
from services.cli.base import serve_app

# service name → (uvicorn factory, settings env prefix, default port)
SERVICES: dict[str, tuple[str, str, int]] = {
    "reward": ("services.reward.app:create_app", "PRL_REWARD_", 8001),
    "embedding": ("services.embedding.app:create_app", "PRL_EMBEDDING_", 8002),
    "leaderboard": ("services.leaderboard.app:create_app", "PRL_LEADERBOARD_", 8003),
    "trainer": ("trainer.service:create_app", "PRL_TRAINER_", 8004),
}


def run_service(
    name: str, host: str | None, port: int | None, workers: int | None, db: str | None = None
) -> None:
    """Start ``name`` under uvicorn; CLI flags override the ``PRL_<NAME>_*`` settings."""
    from services.cli.errors import CliError
    from services.common.serving import serve
    from services.stack import port_in_use

    factory, prefix, default_port = SERVICES[name]
    for key, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[prefix + key] = str(value)
    if db is not None:
        os.environ["PRL_DATABASE_URL"] = db
    bind_host = os.environ.get(prefix + "HOST", "127.0.0.1")
    bind_port = int(os.environ.get(prefix + "PORT", default_port))
    if port_in_use(bind_port, bind_host):
        raise CliError(f"port {bind_port} on {bind_host} is in use: pick another with --port")
    serve(
        factory,
        host=bind_host,
        port=bind_port,
        workers=int(os.environ.get(prefix + "WORKERS", 1)),
        drain_s=float(os.environ.get(prefix + "DRAIN_S", 10)),
        log_level=os.environ.get(prefix + "LOG_LEVEL", "info"),
    )


def _command(name: str) -> None:
    def serve(
        host: str | None = typer.Option(
            None, help=f"bind address (default PRL_{name.upper()}_HOST or 127.0.0.1)"
        ),
        port: int | None = typer.Option(None, help=f"port (default {SERVICES[name][2]})"),
        workers: int | None = typer.Option(None, help="uvicorn worker processes"),
        db: str | None = db_option(),
    ) -> None:
        run_service(name, host, port, workers, db)

    serve.__doc__ = f"Run the {name} service."
    serve_app.command(name)(serve)


for _name in SERVICES:
    _command(_name)
