"""``prl export vision-encoder --checkpoint DIR --out DIR``: PIVOT encoder export (+ drift report)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from services.cli.base import export_app

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@export_app.command("vision-encoder")
def vision_encoder(
    checkpoint: Path = typer.Option(
        ..., exists=True, file_okay=False, help="trained VLM checkpoint dir"
    ),
    out: Path = typer.Option(..., help="directory for the standalone vision encoder"),
    drift_base: Path | None = typer.Option(
        None,
        exists=True,
        file_okay=False,
        help="base VLM or encoder dir: also write drift.json against it",
    ),
    probe_images: Path | None = typer.Option(
        None, exists=True, file_okay=False, help="directory of probe images for the drift report"
    ),
) -> None:
    """Save the vision tower of CHECKPOINT as a standalone model that loads back on its own."""
    from trainer.pivot import export_vision_encoder

    export_vision_encoder(checkpoint, out)
    if drift_base is not None:
        if probe_images is None:
            raise typer.BadParameter("--drift-base needs --probe-images")
        report = drift(drift_base, out, probe_images)
        (out / "drift.json").write_text(json.dumps(report, indent=1))
        typer.echo(json.dumps(report))
    typer.echo(str(out))


def drift(base: Path, trained: Path, images_dir: Path) -> dict:
    """:func:`trainer.pivot.drift_report` over the images of ``images_dir`` (sorted by name)."""
    from PIL import Image

    from trainer.pivot import drift_report

    paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    images = [Image.open(p).convert("RGB") for p in paths]
    return drift_report(base, trained, images)
