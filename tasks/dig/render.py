"""The renderer interface of the DiG generator and what a render returns.

A renderer turns scenes into images plus, per object, its *visible footprint*: the pixels
whose final colour that object influences (its own pixels not hidden by nearer objects, and
for the raster renderer its contact shadow). Ground-truth boxes come from these footprints,
not from the pixel difference of the pair, so the pixel-truth tests check the renderer's
bookkeeping against the pixels independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from services.common.registry import Registry
from tasks.dig.scene import Scene


@dataclass(frozen=True)
class Footprint:
    """A boolean mask ``(h, w)`` placed with its top-left pixel at row ``y0``, column ``x0``."""

    y0: int
    x0: int
    mask: np.ndarray

    def box(self) -> tuple[float, float, float, float] | None:
        """Pixel-edge box ``[x1, y1, x2, y2]`` of the mask (pixel ``(i, j)`` covers
        ``[j, j+1) × [i, i+1)``), or ``None`` when the mask is empty."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(self.mask.any(axis=0))
        return (
            float(self.x0 + cols[0]),
            float(self.y0 + rows[0]),
            float(self.x0 + cols[-1] + 1),
            float(self.y0 + rows[-1] + 1),
        )

    def full(self, height: int, width: int) -> np.ndarray:
        """The mask pasted into an all-false ``(height, width)`` array."""
        out = np.zeros((height, width), dtype=bool)
        h, w = self.mask.shape
        out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = self.mask
        return out


def merge_footprints(parts: list[Footprint]) -> Footprint:
    """Union of footprints in one window covering all of them."""
    if not parts:
        return Footprint(0, 0, np.zeros((0, 0), dtype=bool))
    y0 = min(p.y0 for p in parts)
    x0 = min(p.x0 for p in parts)
    y1 = max(p.y0 + p.mask.shape[0] for p in parts)
    x1 = max(p.x0 + p.mask.shape[1] for p in parts)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for p in parts:
        h, w = p.mask.shape
        mask[p.y0 - y0 : p.y0 - y0 + h, p.x0 - x0 : p.x0 - x0 + w] |= p.mask
    return Footprint(y0, x0, mask)


@dataclass(frozen=True)
class Rendered:
    """One rendered scene: ``image`` ``(H, W, 3) uint8`` and footprints by object ``uid``."""

    image: np.ndarray
    footprints: dict[int, Footprint]


class Renderer(Protocol):
    """Renders scenes at a fixed ``(width, height)``; same scene → same bytes."""

    name: str
    size: tuple[int, int]

    def render_many(self, scenes: Sequence[Scene]) -> list[Rendered]: ...

    def close(self) -> None: ...


renderers: Registry[type] = Registry(
    "DiG renderer", builtins=("tasks.dig.raster", "tasks.dig.blender")
)
