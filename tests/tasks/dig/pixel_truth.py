"""Pixel-truth checks shared by the DiG renderer tests (raster and blender)."""

from __future__ import annotations

import numpy as np


def changed_mask(a: np.ndarray, b: np.ndarray, threshold: int = 0) -> np.ndarray:
    """Pixels where any channel differs by more than ``threshold``."""
    return (np.abs(a.astype(np.int16) - b.astype(np.int16)) > threshold).any(axis=2)


def pixel_truth_violations(
    a: np.ndarray, b: np.ndarray, boxes: list[list[float]], tol: float = 2.0, threshold: int = 0
) -> list[str]:
    """What breaks "boxes cover the pixel differences" (empty list: nothing).

    Every changed pixel (cell ``[c, c+1) × [r, r+1)``) must lie in some box grown by ``tol``;
    every box must contain at least one changed pixel.
    """
    changed = changed_mask(a, b, threshold)
    rows, cols = np.nonzero(changed)
    covered = np.zeros(rows.shape, dtype=bool)
    problems = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        inside = (
            (cols >= x1 - tol)
            & (cols + 1 <= x2 + tol)
            & (rows >= y1 - tol)
            & (rows + 1 <= y2 + tol)
        )
        covered |= inside
        strict = (cols >= x1) & (cols + 1 <= x2) & (rows >= y1) & (rows + 1 <= y2)
        if not strict.any():
            problems.append(f"box {i} {[x1, y1, x2, y2]} contains no changed pixel")
    if not covered.all():
        r, c = rows[~covered][0], cols[~covered][0]
        problems.append(
            f"{int((~covered).sum())} changed pixels outside every box, e.g. (x={c}, y={r})"
        )
    return problems
