"""Completion → predicted boxes in original-image pixels, through the task's frame.

Uses the reward service's own parser (``services.reward.scoring.parse.parse_boxes``: last
``<answer>`` block, every accepted box dialect) and frame mapping
(``services.reward.scoring.geometry.to_pixels``), so the benchmark reads an answer exactly as
the reward does. The frame comes from the task sample; it is never guessed from the numbers.
"""

from __future__ import annotations

from typing import Any

from schemas.geometry import Frame
from services.benchmark.records import PredBox


def parse_prediction(completion: str, frame: Frame) -> tuple[PredBox, ...] | None:
    """Boxes ``[x1, y1, x2, y2]`` in pixels with their labels/confidences; None on a parse error.

    Inverted boxes become zero-area boxes (the reward's ``canonical``), so they can never match.
    """
    from services.reward.scoring.geometry import canonical, to_pixels
    from services.reward.scoring.parse import ParseError, parse_boxes

    ans = parse_boxes(completion)
    if isinstance(ans, ParseError):
        return None
    px = canonical(to_pixels(ans.boxes, frame))
    n = px.shape[0]
    labels = ans.labels or [None] * n
    confs = ans.confidences or [None] * n
    return tuple(
        PredBox(
            (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            None if lab is None else str(lab),
            None if c is None else float(c),
        )
        for b, lab, c in zip(px, labels, confs, strict=True)
    )


def boxes_to_json(boxes: tuple[PredBox, ...] | None) -> list[dict[str, Any]] | None:
    """JSON form stored with a prediction (``extra["boxes"]``)."""
    if boxes is None:
        return None
    return [{"box": list(b.box), "label": b.label, "score": b.score} for b in boxes]


def boxes_from_json(data: list[dict[str, Any]] | None) -> tuple[PredBox, ...] | None:
    if data is None:
        return None
    return tuple(PredBox(tuple(d["box"]), d.get("label"), d.get("score")) for d in data)  # type: ignore[arg-type]
