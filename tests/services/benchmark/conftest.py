"""Shared fixtures: a small generated DiG set (real task, raster renderer) and predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def dig_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tasks.dig.generate import generate

    root = tmp_path_factory.mktemp("dig")
    generate(root, 9, size=(64, 64), progress=False, seed=3)
    return root


@pytest.fixture(scope="session")
def dig_task(dig_root: Path):  # type: ignore[no-untyped-def]
    from tasks.registry import get_task

    return get_task("dig", root=str(dig_root))


def answer(boxes: list[list[float]]) -> str:
    return (
        "<think>look</think> <answer>" + json.dumps([{"bbox_2d": b} for b in boxes]) + "</answer>"
    )


def write_predictions(task, path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Sample i: all GT boxes (i % 3 == 0), only the first (i % 3 == 1), garbage (i % 3 == 2)."""
    table = {}
    for i, s in enumerate(task.samples()):
        boxes = [list(b) for b in s.solution.boxes]
        if i % 3 == 0:
            table[s.id] = answer(boxes)
        elif i % 3 == 1:
            table[s.id] = answer(boxes[:1])
        else:
            table[s.id] = "<think>?</think> <answer>no idea</answer>"
    path.write_text(
        "".join(json.dumps({"id": k, "completion": v}) + "\n" for k, v in table.items())
    )
    return table


@pytest.fixture()
def dig_predictions(dig_task, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "preds.jsonl"
    write_predictions(dig_task, path)
    return path


@pytest.fixture(scope="session")
def sharp_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2-VL with larger random weights, so outputs depend on the input.

    (At the default init scale the tiny model emits the same tokens for every prompt, and a
    batch-invariance test could not fail.) Saved and loaded through ``from_pretrained``.
    """
    import torch

    from trainer.tiny import build_tiny_vlm, load_vlm

    base = build_tiny_vlm("qwen2vl", tmp_path_factory.mktemp("tiny"), seed=0)
    model, processor = load_vlm(base)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.3, generator=g)
    out = tmp_path_factory.mktemp("tiny_sharp")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
