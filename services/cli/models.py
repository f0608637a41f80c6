"""``prl models tiny --kind clip|siglip|qwen2vl|qwen25vl --out DIR``: tiny random offline models."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from services.cli.base import models_app

ENCODER_KINDS = ("clip", "siglip")
VLM_KINDS = ("qwen2vl", "qwen25vl")


@models_app.command("tiny")
def tiny(
    kind: str = typer.Option(..., help=f"one of {', '.join(ENCODER_KINDS + VLM_KINDS)}"),
    out: Path = typer.Option(..., help="directory to write (save_pretrained layout)"),
    seed: int = typer.Option(0, help="initialisation seed"),
) -> None:
    """Build a tiny randomly initialised model with an offline tokenizer/processor."""
    if kind in ENCODER_KINDS:
        from services.embedding.tiny import build_tiny_encoder

        build_tiny_encoder(_as(kind), out, seed=seed)
    elif kind in VLM_KINDS:
        from trainer.tiny import build_tiny_vlm

        build_tiny_vlm(_as(kind), out, seed=seed)
    else:
        raise typer.BadParameter(f"unknown kind {kind!r}; use one of {ENCODER_KINDS + VLM_KINDS}")
    typer.echo(str(out))


def _as(kind: str) -> Literal["clip", "siglip", "qwen2vl", "qwen25vl"]:
    return kind  # type: ignore[return-value]
