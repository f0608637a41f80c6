"""Large batches are parsed and scored off the event loop (probes keep answering); small ones
stay inline. Results are the same either way."""

import asyncio
import threading

from schemas.reward import GroupsRequest
from services.reward.scoring import ascore_groups, pipeline


def request(n_completions: int) -> GroupsRequest:
    return GroupsRequest.model_validate(
        {
            "reward": "dig",
            "groups": [
                {
                    "id": "g",
                    "solution": {"boxes": [[10, 10, 50, 50]]},
                    "completions": [
                        f"<think>t</think><answer>[[10,10,{50 + i % 7},50]]</answer>"
                        for i in range(n_completions)
                    ],
                }
            ],
        }
    )


def threads_used(monkeypatch, n: int) -> tuple[set[str], list[float]]:
    seen: set[str] = set()
    for name in ("_prepared_groups", "_sync_part"):
        original = getattr(pipeline, name)

        def spy(*args, _original=original):
            seen.add(threading.current_thread().name)
            return _original(*args)

        monkeypatch.setattr(pipeline, name, spy)
    out = asyncio.run(ascore_groups(request(n)))
    return seen, out.groups[0].rewards


def test_small_batches_are_scored_inline(monkeypatch):
    seen, _ = threads_used(monkeypatch, pipeline.OFFLOAD_MIN_ITEMS - 1)
    assert seen == {threading.main_thread().name}


def test_large_batches_are_scored_in_a_worker_thread_with_the_same_results(monkeypatch):
    n = pipeline.OFFLOAD_MIN_ITEMS
    seen, rewards = threads_used(monkeypatch, n)
    assert threading.main_thread().name not in seen
    monkeypatch.setattr(pipeline, "OFFLOAD_MIN_ITEMS", 10**9)
    _, inline = threads_used(monkeypatch, n)
    assert rewards == inline
