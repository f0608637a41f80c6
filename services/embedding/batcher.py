"""Dynamic batching with a bounded queue (Triton ``dynamic_batching``, Ray ``@serve.batch``).

Requests put *items* (one image or one text each) into one FIFO queue and await one future
per item. A single worker task forms batches: it takes the queue head as soon as either

* ``max_batch_size`` items are waiting, or
* the *oldest* waiting item has waited ``max_delay_ms`` (Triton's ``max_queue_delay``; items
  that queued while the previous batch was computing do not wait again),

runs ``run_batch(items) -> results`` in a worker thread (so the event loop keeps accepting
requests and the model computes while the next batch fills), and resolves the futures in
order. Batches run one at a time: one process owns one device.

Backpressure: :meth:`DynamicBatcher.submit` refuses a request whose items would take the
queue past ``max_queue`` (:class:`QueueFull` → 503 + ``Retry-After``) — all or nothing, so a
request is never half-queued. Timeouts: ``submit(..., timeout)`` raises ``TimeoutError`` and
cancels its futures; cancelled items are dropped when the next batch is formed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")

BatchObserver = Callable[[int, list[float]], None]
"""Called after each batch with its size and each item's queue wait in seconds."""


class QueueFull(Exception):
    """The bounded queue cannot take the request's items."""

    def __init__(self, queued: int, asked: int, limit: int) -> None:
        super().__init__(
            f"embedding queue is full ({queued} items waiting, {asked} more asked, limit {limit}); retry later"
        )


@dataclass
class _Entry(Generic[I, R]):
    item: I
    future: asyncio.Future[R]
    enqueued: float


class DynamicBatcher(Generic[I, R]):
    def __init__(
        self,
        run_batch: Callable[[list[I]], Sequence[R]],
        *,
        max_batch_size: int,
        max_delay_ms: float,
        max_queue: int,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be >= 1")
        self.run_batch = run_batch
        self.max_batch_size, self.max_delay_s, self.max_queue = (
            max_batch_size,
            max_delay_ms / 1e3,
            max_queue,
        )
        self.observer = observer
        self._queue: deque[_Entry[I, R]] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.batches_run = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start the worker task and its own compute thread (not the loop's default executor,
        where per-request image decoding would queue ahead of the model)."""
        if self._task is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-batch")
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="embedding-batcher"
            )

    async def stop(self) -> None:
        """Stop the worker; futures still queued fail with ``CancelledError``."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        while self._queue:
            self._queue.popleft().future.cancel()

    async def submit(self, items: Sequence[I], timeout: float | None = None) -> list[R]:
        """Queue ``items`` and wait for their results, in order."""
        if not items:
            return []
        if self._task is None:
            raise RuntimeError("batcher is not running (start() it inside the event loop)")
        if len(self._queue) + len(items) > self.max_queue:
            raise QueueFull(len(self._queue), len(items), self.max_queue)
        loop = asyncio.get_running_loop()
        now = loop.time()
        futures: list[asyncio.Future[R]] = [loop.create_future() for _ in items]
        self._queue.extend(_Entry(it, fut, now) for it, fut in zip(items, futures, strict=True))
        self._arrived.set()
        try:
            return list(await asyncio.wait_for(asyncio.gather(*futures), timeout))
        finally:
            for fut in futures:  # timeout or caller cancelled: let the worker skip them
                if not fut.done():
                    fut.cancel()

    async def _wait_for_batch(self) -> None:
        """Return when a batch should be taken: full, or the oldest item's delay is over."""
        loop = asyncio.get_running_loop()
        while True:
            self._drop_cancelled_head()
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if len(self._queue) >= self.max_batch_size:
                return
            remaining = self._queue[0].enqueued + self.max_delay_s - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _drop_cancelled_head(self) -> None:
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()

    def _take(self) -> list[_Entry[I, R]]:
        batch: list[_Entry[I, R]] = []
        while self._queue and len(batch) < self.max_batch_size:
            entry = self._queue.popleft()
            if not entry.future.done():
                batch.append(entry)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_for_batch()
            batch = self._take()
            if not batch:
                continue
            started = loop.time()
            try:
                items = [e.item for e in batch]
                results = await loop.run_in_executor(self._executor, self.run_batch, items)
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"run_batch returned {len(results)} results for {len(batch)} items"
                    )
            except Exception as exc:  # the batch fails, the worker lives on
                log.exception("embedding batch of %d failed", len(batch))
                for e in batch:
                    if not e.future.done():
                        e.future.set_exception(exc)
                continue
            self.batches_run += 1
            for e, r in zip(batch, results, strict=True):
                if not e.future.done():
                    e.future.set_result(r)
            if self.observer is not None:
                self.observer(len(batch), [started - e.enqueued for e in batch])
