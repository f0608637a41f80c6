"""Scoring a whole request at once (bulk parse, bucketed geometry, batched Hungarian) gives
bit-identical results to scoring each completion alone (the per-sample path)."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.reward import Group, GroupsRequest
from services.reward.scoring import ascore_groups

coord = st.integers(-40, 700).map(float) | st.floats(-40, 700).map(lambda v: round(v, 2))


@st.composite
def completion(draw):
    n = draw(st.integers(0, 6))
    boxes = [[draw(coord) for _ in range(4)] for _ in range(n)]
    kind = draw(st.sampled_from(["items", "virft", "bare", "garbage"]))
    if kind == "items":
        body = json.dumps(
            [{"bbox_2d": b, "label": draw(st.sampled_from(["a", "b"]))} for b in boxes]
        )
    elif kind == "virft":
        body = json.dumps([{"Position": b, "Confidence": draw(st.floats(0, 1))} for b in boxes])
    elif kind == "bare":
        body = json.dumps(boxes)
    else:
        body = draw(st.sampled_from(["[{", "none", '[{"bbox_2d": [1, 2]}]', ""]))
    return f"<think>t</think><answer>{body}</answer>"


@st.composite
def group(draw, gid):
    m = draw(st.integers(0, 5))
    gt = []
    for _ in range(m):
        x, y = draw(st.integers(0, 500)), draw(st.integers(0, 400))
        gt.append([x, y, x + draw(st.integers(1, 140)), y + draw(st.integers(1, 80))])
    labels = draw(st.none() | st.just([draw(st.sampled_from(["a", "b"])) for _ in gt]))
    frame = draw(
        st.sampled_from(
            [
                {"coords": "pixel", "image_size": [640, 480]},
                {"coords": "norm1000", "image_size": [640, 480]},
                {"coords": "pixel"},
            ]
        )
    )
    return Group.model_validate(
        {
            "id": gid,
            "solution": {"boxes": gt, "labels": labels},
            "frame": frame,
            "completions": draw(st.lists(completion(), min_size=1, max_size=8)),
        }
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(), min_size=1, max_size=6).flatmap(
        lambda ids: st.tuples(*[group(f"g{k}") for k in range(len(ids))])
    ),
    st.sampled_from(["dig", "virft_detection", "vlmr1_detection_weighted_sum"]),
)
def test_batched_request_equals_each_completion_alone(groups, preset):
    whole = asyncio.run(ascore_groups(GroupsRequest(reward=preset, groups=list(groups))))
    for g, got in zip(groups, whole.groups, strict=True):
        for j, text in enumerate(g.completions):
            alone = g.model_copy(update={"completions": [text]})
            one = asyncio.run(ascore_groups(GroupsRequest(reward=preset, groups=[alone])))
            r = one.groups[0]
            assert got.rewards[j] == r.rewards[0]  # ==, not approx: bit-identical
            assert {n: v[j] for n, v in got.components.items()} == {
                n: v[0] for n, v in r.components.items()
            }
            assert got.errors[j] == r.errors[0]
