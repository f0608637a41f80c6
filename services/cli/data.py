"""``prl data dig``: generate a DiG (differential grounding) dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from services.cli.base import data_app


@data_app.command("dig")
def dig(
    out: Path = typer.Option(..., help="output directory (images/, manifest.jsonl, dataset.json)"),
    n: int = typer.Option(4800, min=0, help="number of pairs (split 'all': thirds per stage)"),
    renderer: str = typer.Option("raster", help="raster (numpy, default) or blender (bpy)"),
    seed: int = typer.Option(0, help="random seed; same seed → same bytes"),
    split: str = typer.Option("all", help="curriculum stage: single | dual | mixed | all"),
    width: int = typer.Option(320, min=16, help="image width in pixels"),
    height: int = typer.Option(240, min=16, help="image height in pixels"),
    partition: str = typer.Option("train", help="partition name recorded in the manifest"),
) -> None:
    """Render DiG image pairs with ground-truth difference boxes (progress bar on stderr)."""
    import json

    from tasks.dig import generate
    from tasks.dig.generate import DATASET_INFO, STAGES

    if split not in (*STAGES, "all"):
        raise typer.BadParameter(f"split {split!r}: use single, dual, mixed or all")
    if renderer not in ("raster", "blender"):
        raise typer.BadParameter(f"renderer {renderer!r}: use raster or blender")
    manifest = generate(
        out, n, renderer=renderer, seed=seed, split=split, size=(width, height), partition=partition
    )
    info = json.loads((manifest.parent / DATASET_INFO).read_text())
    typer.echo(json.dumps({"manifest": str(manifest), "version": info["version"], "n": n}))
