"""Split a large batch into requests that fit the server's limits (pure functions).

A batch of items (samples, groups, texts) is sent as consecutive slices. A slice holds items
of total weight at most ``max_items`` (weight 1 per item by default; a GRPO group weighs its
number of completions, which is what the reward service counts), and its JSON body — ``overhead`` bytes of envelope plus the items'
encoded sizes plus one comma between items — stays within ``max_bytes``. Packing is greedy
and keeps order, so the responses concatenate back into the batch's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerLimits:
    """Request-size limits: items per request and body bytes (None = unknown/unlimited)."""

    max_items: int | None = None
    max_body_bytes: int | None = None

    @classmethod
    def from_payload(cls, payload: object, item_key: str) -> ServerLimits:
        """Read limits from a server's JSON (``{"max_samples": …, "max_body_bytes": …}``).

        ``item_key`` names the per-request item limit (``max_samples``, ``max_groups``, …).
        Missing or malformed fields read as unknown.
        """
        if not isinstance(payload, dict):
            return cls()
        items, body = payload.get(item_key), payload.get("max_body_bytes")
        return cls(
            max_items=items if isinstance(items, int) and items > 0 else None,
            max_body_bytes=body if isinstance(body, int) and body > 0 else None,
        )

    def tightest(self, other: ServerLimits) -> ServerLimits:
        """The smaller of each limit (unknown counts as no limit)."""

        def lo(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else min(a, b)

        return ServerLimits(
            lo(self.max_items, other.max_items), lo(self.max_body_bytes, other.max_body_bytes)
        )


class ItemTooLargeError(ValueError):
    """One item alone does not fit in a request body."""


def pack_chunks(
    sizes: Sequence[int],
    *,
    max_items: int | None,
    max_bytes: int | None,
    overhead: int = 0,
    weights: Sequence[int] | None = None,
) -> list[tuple[int, int]]:
    """Half-open ranges ``[start, end)`` covering ``range(len(sizes))`` in order.

    Each range has ``Σ weights[start:end] <= max_items`` (a single item heavier than that gets
    a range of its own: the server is then the judge) and
    ``overhead + Σ sizes[start:end] + (end - start - 1) <= max_bytes``. An empty batch gives
    no ranges. Raises :class:`ItemTooLargeError` if one item cannot fit on its own.
    """
    if max_items is not None and max_items < 1:
        raise ValueError("max_items must be >= 1")
    w = list(weights) if weights is not None else [1] * len(sizes)
    ranges: list[tuple[int, int]] = []
    start, used, load = 0, overhead, 0
    for i, size in enumerate(sizes):
        if max_bytes is not None and overhead + size > max_bytes:
            raise ItemTooLargeError(
                f"item {i} is {size} bytes encoded; with the {overhead}-byte envelope it exceeds "
                f"the server's body limit of {max_bytes} bytes"
            )
        count = i - start
        extra = size + (1 if count else 0)
        full = count > 0 and (
            (max_items is not None and load + w[i] > max_items)
            or (max_bytes is not None and used + extra > max_bytes)
        )
        if full:
            ranges.append((start, i))
            start, used, load, extra = i, overhead, 0, size
        used += extra
        load += w[i]
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


def join_json_array(prefix: bytes, items: Sequence[bytes], suffix: bytes) -> bytes:
    """``prefix + b"[" + b",".join(items) + b"]" + suffix``: a JSON body from encoded items."""
    return prefix + b"[" + b",".join(items) + b"]" + suffix
