"""Dynamic batcher: coalescing, ordering, bounded queue, timeouts, failures (no model)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from services.embedding.batcher import DynamicBatcher, QueueFull


class Recorder:
    """run_batch that records batch sizes; item x → x * 10 (optionally slow)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s
        self.gate: threading.Event | None = None

    def __call__(self, items: list[int]) -> list[int]:
        if self.gate is not None:
            self.gate.wait(5)
        time.sleep(self.delay_s)
        self.batches.append(list(items))
        return [x * 10 for x in items]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_coalesced_and_ordered() -> None:
    rec = Recorder()

    async def main() -> list[list[int]]:
        b = DynamicBatcher(rec, max_batch_size=64, max_delay_ms=50, max_queue=1000)
        b.start()
        reqs = [list(range(k * 3, k * 3 + 3)) for k in range(10)]
        out = await asyncio.gather(*(b.submit(r) for r in reqs))
        await b.stop()
        return out

    out = run(main())
    assert out == [[x * 10 for x in range(k * 3, k * 3 + 3)] for k in range(10)]
    # 30 items that all arrive within the 50 ms window: one forward, not ten
    assert [len(x) for x in rec.batches] == [30]


def test_batches_never_exceed_max_batch_size() -> None:
    rec = Recorder()

    async def main() -> list[int]:
        b = DynamicBatcher(rec, max_batch_size=4, max_delay_ms=20, max_queue=1000)
        b.start()
        out = await b.submit(list(range(10)))
        await b.stop()
        return out

    assert run(main()) == [x * 10 for x in range(10)]
    assert [len(x) for x in rec.batches] == [4, 4, 2]
    assert [x for batch in rec.batches for x in batch] == list(range(10))  # FIFO


def test_lone_request_waits_at_most_about_max_delay() -> None:
    rec = Recorder()

    async def main() -> float:
        b = DynamicBatcher(rec, max_batch_size=64, max_delay_ms=30, max_queue=10)
        b.start()
        t0 = time.perf_counter()
        await b.submit([1])
        dt = time.perf_counter() - t0
        await b.stop()
        return dt

    assert run(main()) >= 0.025  # it held the partial batch for the delay


def test_full_queue_refuses_whole_request() -> None:
    rec = Recorder()
    rec.gate = threading.Event()

    async def main() -> None:
        b = DynamicBatcher(rec, max_batch_size=2, max_delay_ms=0, max_queue=5)
        b.start()
        first = asyncio.ensure_future(b.submit([1, 2]))  # taken by the worker, blocked on gate
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(b.submit([3, 4, 5]))  # queued (3 of 5)
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull, match="limit 5"):
            await b.submit([6, 7, 8])  # 3 + 3 > 5: refused, nothing half-queued
        assert b.depth == 3
        rec.gate.set()
        assert await first == [10, 20]
        assert await second == [30, 40, 50]
        await b.stop()

    run(main())


def test_timeout_cancels_and_worker_skips_the_items() -> None:
    rec = Recorder()
    rec.gate = threading.Event()

    async def main() -> None:
        b = DynamicBatcher(rec, max_batch_size=1, max_delay_ms=0, max_queue=10)
        b.start()
        blocker = asyncio.ensure_future(b.submit([1]))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await b.submit([2, 3], timeout=0.05)
        rec.gate.set()
        assert await blocker == [10]
        assert await b.submit([4]) == [40]
        await b.stop()

    run(main())
    assert [x for batch in rec.batches for x in batch] == [1, 4]  # 2 and 3 never ran


def test_failing_batch_fails_its_requests_and_worker_survives() -> None:
    calls = {"n": 0}

    def flaky(items: list[int]) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("boom")
        return items

    async def main() -> None:
        b = DynamicBatcher(flaky, max_batch_size=8, max_delay_ms=0, max_queue=10)
        b.start()
        with pytest.raises(ValueError, match="boom"):
            await b.submit([1])
        assert await b.submit([2]) == [2]
        await b.stop()

    run(main())


def test_observer_sees_batch_sizes_and_waits() -> None:
    seen: list[tuple[int, list[float]]] = []

    async def main() -> None:
        b = DynamicBatcher(Recorder(), max_batch_size=3, max_delay_ms=5, max_queue=10,
                           observer=lambda n, w: seen.append((n, w)))  # fmt: skip
        b.start()
        await b.submit([1, 2, 3, 4])
        await b.stop()

    run(main())
    assert [n for n, _ in seen] == [3, 1]
    assert all(len(w) == n and min(w) >= 0 for n, w in seen)


def test_submit_before_start_is_an_error() -> None:
    async def main() -> None:
        b = DynamicBatcher(Recorder(), max_batch_size=1, max_delay_ms=0, max_queue=1)
        with pytest.raises(RuntimeError, match="not running"):
            await b.submit([1])

    run(main())
