"""``prl train --config FILE.yaml [--resume] [--run-dir DIR] [--method grpo|sft|dpo]``.

One GRPO/DEVA run (trainer.train), or with ``--method dpo`` PIVOT preference training: pairs
from reward-ranked rollouts (best vs worst completion of each group, ties skipped) trained
with TRL's DPOTrainer. The config may be YAML or JSON (the trainer service writes
``config.json`` and passes ``--output-dir``, an alias of ``--run-dir``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from services.cli.base import app


@app.command("train")
def train(
    config: Path = typer.Option(..., exists=True, dir_okay=False, help="run config (YAML)"),
    resume: bool = typer.Option(False, help="continue from the newest checkpoint in run_dir"),
    overwrite: bool = typer.Option(
        False, help="discard the run already in run_dir (metrics.jsonl, checkpoints/)"
    ),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", "--output-dir", help="override the config's run_dir"
    ),
    max_steps: int | None = typer.Option(None, help="override the config's max_steps"),
    method: str | None = typer.Option(
        None,
        help="grpo | sft | dpo (override the config's method; dpo = PIVOT preference training)",
    ),
    rollouts: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="dpo: rollout groups JSONL (else sampled)"
    ),
) -> None:
    """Train with TRL's GRPOTrainer plus DEVA/PGPO terms (or DPO); metrics in <run_dir>."""
    import logging

    from trainer.config import load_config
    from trainer.preflight import preflight

    logging.basicConfig(level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    overrides: dict[str, object] = {}
    if run_dir is not None:
        overrides["run_dir"] = str(run_dir)
    if max_steps is not None:
        overrides["max_steps"] = max_steps
    if method is not None:
        overrides["method"] = method
    cfg = load_config(config, overrides)  # a ValidationError is one line at the CLI boundary
    if rollouts is not None:
        dpo = cfg.dpo.model_copy(update={"rollouts": str(rollouts.resolve())})
        cfg = cfg.model_copy(update={"dpo": dpo})
    preflight(cfg, resume=resume, overwrite=overwrite)
    from trainer.train import run

    result = run(cfg, resume=resume)
    typer.echo(f"{result.run_dir} step={result.global_step}")
