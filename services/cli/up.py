"""``prl up``: the local stack (reward, embedding, leaderboard, trainer) on loopback with SQLite."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from services.cli.base import app
from services.common.catalog import SERVICE_NAMES, default_port


@app.command("up")
def up(
    workdir: Path = typer.Option(Path("prl-stack"), help="SQLite file, models and logs go here"),
    services: str = typer.Option(
        ",".join(SERVICE_NAMES),
        help="comma-separated services to start",
    ),
    timeout: float = typer.Option(180.0, help="seconds to wait for readiness"),
    reward_port: int = typer.Option(default_port("reward"), help="reward service port"),
    embedding_port: int = typer.Option(default_port("embedding"), help="embedding service port"),
    leaderboard_port: int = typer.Option(
        default_port("leaderboard"), help="leaderboard service port"
    ),
    trainer_port: int = typer.Option(default_port("trainer"), help="trainer service port"),
) -> None:
    """Start the local stack, wait until every service is ready, print URLs; Ctrl-C stops all."""
    from services.cli.errors import CliError
    from services.stack import LocalStack, StackError, default_specs, port_in_use

    names = tuple(s.strip() for s in services.split(",") if s.strip())
    unknown = [n for n in names if n not in SERVICE_NAMES]
    if unknown:
        raise CliError(f"--services: unknown {unknown}; choose from {', '.join(SERVICE_NAMES)}")
    ports = {
        "reward": reward_port,
        "embedding": embedding_port,
        "leaderboard": leaderboard_port,
        "trainer": trainer_port,
    }
    for name in names:
        if port_in_use(ports[name]):
            raise CliError(
                f"port {ports[name]} ({name}) is in use (another `prl up`?): stop that process "
                f"or pick another with --{name}-port"
            )
    workdir.mkdir(parents=True, exist_ok=True)
    if "embedding" in names:
        _ensure_encoder(workdir / "models" / "clip")
    stack = LocalStack(default_specs(workdir, names, ports), log_dir=workdir / "logs")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stack.start()
        for name, svc in stack.running.items():
            typer.echo(f"started {name} pid={svc.proc.pid}")
        stack.wait_ready(timeout)
        for name, url in stack.urls().items():
            typer.echo(f"{name:12s} {url}")
        typer.echo("ready (Ctrl-C stops every service)")
        stop.wait()
    except StackError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    finally:
        stack.stop()
        typer.echo("stopped")


def _ensure_encoder(path: Path) -> None:
    if (path / "config.json").exists():
        return
    from services.embedding.tiny import build_tiny_encoder

    build_tiny_encoder("clip", path, seed=0)
