"""``prl serve <service>``: one command per entry of :data:`services.common.catalog.SERVICES`."""

from __future__ import annotations

import os

import typer

from services.cli._store import db_option
from services.cli.base import serve_app
from services.common.catalog import SERVICES


def run_service(
    name: str, host: str | None, port: int | None, workers: int | None, db: str | None = None
) -> None:
    """Start ``name`` under uvicorn; CLI flags override the ``PRL_<NAME>_*`` settings."""
    from services.cli.errors import CliError
    from services.common.serving import serve
    from services.stack import port_in_use

    info = SERVICES[name]
    factory, prefix, default_port = info.factory, info.env_prefix, info.port
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
        port: int | None = typer.Option(None, help=f"port (default {SERVICES[name].port})"),
        workers: int | None = typer.Option(None, help="uvicorn worker processes"),
        db: str | None = db_option(),
    ) -> None:
        run_service(name, host, port, workers, db)

    serve.__doc__ = f"Run the {name} service ({SERVICES[name].summary})."
    serve_app.command(name)(serve)


for _name in SERVICES:
    _command(_name)
