"""``prl train --config FILE.yaml [--resume] [--run-dir DIR]``: one GRPO/DEVA run (trainer.train).

The config may be YAML or JSON (the trainer service writes ``config.json`` and passes
``--output-dir``, an alias of ``--run-dir``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from services.cli.base import app


@app.command("train")
def train(
    config: Path = typer.Option(..., exists=True, dir_okay=False, help="run config (YAML)"),
    resume: bool = typer.Option(False, help="continue from the newest checkpoint in run_dir"),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", "--output-dir", help="override the config's run_dir"
    ),
    max_steps: int | None = typer.Option(None, help="override the config's max_steps"),
) -> None:
    """Train with TRL's GRPOTrainer plus DEVA's terms; metrics go to <run_dir>/metrics.jsonl."""
    import logging

    from pydantic import ValidationError

    from trainer.config import load_config
    from trainer.train import run

    logging.basicConfig(level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    overrides: dict[str, object] = {}
    if run_dir is not None:
        overrides["run_dir"] = str(run_dir)
    if max_steps is not None:
        overrides["max_steps"] = max_steps
    try:
        cfg = load_config(config, overrides)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
    result = run(cfg, resume=resume)
    typer.echo(f"{result.run_dir} step={result.global_step}")
