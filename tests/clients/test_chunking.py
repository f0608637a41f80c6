"""Batch packing within item-count and body-byte limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clients.chunking import ItemTooLargeError, ServerLimits, pack_chunks


def _body(sizes, a, b, overhead):
    return overhead + sum(sizes[a:b]) + max(b - a - 1, 0)


@given(
    data=st.lists(st.tuples(st.integers(1, 50), st.integers(1, 6)), max_size=60),
    weighted=st.booleans(),
    max_items=st.one_of(st.none(), st.integers(1, 10)),
    max_bytes=st.one_of(st.none(), st.integers(60, 300)),
    overhead=st.integers(0, 10),
)
def test_packing_covers_in_order_within_limits_and_greedily(
    data, weighted, max_items, max_bytes, overhead
):
    sizes = [s for s, _ in data]
    w = [k for _, k in data] if weighted else [1] * len(data)
    ranges = pack_chunks(
        sizes,
        max_items=max_items,
        max_bytes=max_bytes,
        overhead=overhead,
        weights=w if weighted else None,
    )
    flat = [i for a, b in ranges for i in range(a, b)]
    assert flat == list(range(len(sizes)))
    for a, b in ranges:
        assert b > a
        if max_items is not None and b - a > 1:  # a lone overweight item is the server's call
            assert sum(w[a:b]) <= max_items
        if max_bytes is not None:
            assert _body(sizes, a, b, overhead) <= max_bytes
    # greedy: every chunk but the last could not have taken the next item
    for a, b in ranges[:-1]:
        too_many = max_items is not None and sum(w[a : b + 1]) > max_items
        too_big = max_bytes is not None and _body(sizes, a, b + 1, overhead) > max_bytes
        assert too_many or too_big


def test_hand_computed_example():
    # envelope 10; items 30, 30, 30, 5: 10+30+1+30 = 71 <= 80, +1+30 = 102 > 80
    assert pack_chunks([30, 30, 30, 5], max_items=None, max_bytes=80, overhead=10) == [
        (0, 2),
        (2, 4),
    ]
    assert pack_chunks([1] * 7, max_items=3, max_bytes=None) == [(0, 3), (3, 6), (6, 7)]
    assert pack_chunks([], max_items=3, max_bytes=10) == []
    # GRPO groups weigh their completions: 1+3 | 3 | 5 | 5 with at most 5 per request
    weights = [1, 3, 3, 5, 5]
    assert pack_chunks([1] * 5, max_items=5, max_bytes=None, weights=weights) == [
        (0, 2),
        (2, 3),
        (3, 4),
        (4, 5),
    ]
    assert pack_chunks([1, 1], max_items=2, max_bytes=None, weights=[7, 1]) == [(0, 1), (1, 2)]


def test_item_too_large_names_the_item():
    with pytest.raises(ItemTooLargeError, match="item 1"):
        pack_chunks([5, 500], max_items=None, max_bytes=100, overhead=10)


def test_limits_from_server_payload_and_tightest():
    s = ServerLimits.from_payload({"max_samples": 100, "max_body_bytes": 5000}, "max_samples")
    assert s == ServerLimits(100, 5000)
    assert ServerLimits.from_payload({"max_samples": "x"}, "max_samples") == ServerLimits()
    assert ServerLimits.from_payload([1], "max_samples") == ServerLimits()
    assert ServerLimits(50, None).tightest(s) == ServerLimits(50, 5000)
    assert ServerLimits().tightest(ServerLimits()) == ServerLimits()
