"""Micro-batching queue.

Callers :meth:`MicroBatcher.submit` lists of items; the items of all callers wait in one
bounded FIFO queue. ``workers`` worker tasks (one per allocation) each take up to
``max_batch_size`` items (waiting up to ``max_batch_wait_ms`` for a batch to fill), sort
them by length and run them through ``run_batch`` in a thread pool, then route each result
back to its caller, in the caller's order.

- The queue is bounded (``max_queue`` items): a request that does not fit is rejected whole
  with ``429`` (``es_rejected_execution_exception``, ``Retry-After``) — no unbounded growth.
- A caller that times out or is cancelled has its still-queued items dropped.
- ``workers`` may be changed at any time (adaptive allocations), including to zero: items
  then wait in the queue until workers come back.
- The event loop only moves items around; all model work (tokenisation included) runs in
  the thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .. import metrics
from ..errors import EsError, too_many_requests, unavailable

log = logging.getLogger(__name__)


class _Request:
    __slots__ = ("future", "results", "remaining", "queued", "cancelled")

    def __init__(self, future: asyncio.Future, n: int) -> None:
        self.future = future
        self.results: list[Any] = [None] * n
        self.remaining = n
        self.queued = n
        self.cancelled = False

    def deliver(self, index: int, result: Any) -> None:
        if self.future.done():
            return
        self.results[index] = result
        self.remaining -= 1
        if self.remaining == 0:
            self.future.set_result(self.results)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class _Entry:
    __slots__ = ("request", "index", "item", "length")

    def __init__(self, request: _Request, index: int, item: Any, length: int) -> None:
        self.request = request
        self.index = index
        self.item = item
        self.length = length


class _Throughput:
    """Items completed in the last 60 seconds (per-second buckets) and the peak of that."""

    def __init__(self) -> None:
        self._buckets: deque[list[int]] = deque()  # [second, count]
        self.peak = 0

    def _trim(self, now: int) -> None:
        while self._buckets and self._buckets[0][0] <= now - 60:
            self._buckets.popleft()

    def add(self, n: int) -> None:
        now = int(time.monotonic())
        if self._buckets and self._buckets[-1][0] == now:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([now, n])
        self._trim(now)
        self.peak = max(self.peak, self.last())

    def last(self) -> int:
        self._trim(int(time.monotonic()))
        return sum(c for _, c in self._buckets)


class MicroBatcher:
    def __init__(
        self,
        run_batch: Callable[[list[Any]], list[Any]],
        *,
        name: str = "batcher",
        length: Callable[[Any], int] = len,
        max_batch_size: int = 32,
        max_batch_wait_ms: float = 2.0,
        max_queue: int = 10_000,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._run_batch = run_batch
        self.name = name
        self._length = length
        self.max_batch_size = max_batch_size
        self.max_batch_wait_s = max(0.0, max_batch_wait_ms) / 1000.0
        self.max_queue = max_queue
        self._queue: deque[_Entry] = deque()
        self._queued = 0  # live (not cancelled) items in the queue
        self._dead = 0  # cancelled items still in the queue
        self._wakeup = asyncio.Event()
        self._workers: dict[int, asyncio.Task] = {}
        self._target_workers = 0
        self._executor: ThreadPoolExecutor | None = None
        self._executor_size = 0
        self._closed: EsError | None = None
        self._in_flight = 0
        # Stats.
        self.batches = 0
        self.items = 0
        self.errors = 0
        self.rejected = 0
        self.timeouts = 0
        self.busy_s = 0.0
        self.last_access: float | None = None
        self.throughput = _Throughput()

    # -- state ---------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Items waiting (not yet taken by a worker)."""
        return self._queued

    @property
    def in_flight(self) -> int:
        """Batches currently running in the thread pool."""
        return self._in_flight

    @property
    def workers(self) -> int:
        return self._target_workers

    @property
    def avg_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0

    # -- workers -------------------------------------------------------------------------

    def set_workers(self, n: int) -> None:
        """Run ``n`` workers (parallel batches). Workers above ``n`` stop after their current
        batch; with ``n == 0`` items wait in the queue."""
        if self._closed is not None:
            return
        n = max(0, int(n))
        self._target_workers = n
        if n > self._executor_size:
            old = self._executor
            self._executor = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"infer-{self.name}")
            self._executor_size = n
            if old is not None:
                old.shutdown(wait=False)
        # A worker numbered ``wid`` runs while ``wid < workers``; start the missing ones.
        for wid in range(n):
            task = self._workers.get(wid)
            if task is None or task.done():
                self._workers[wid] = asyncio.create_task(self._worker(wid), name=f"{self.name}-worker-{wid}")
        self._wakeup.set()

    async def _worker(self, wid: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._closed is None and wid < self._target_workers:
                if self._queued == 0:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self._queued < self.max_batch_size and self.max_batch_wait_s > 0:
                    await asyncio.sleep(self.max_batch_wait_s)
                    if self._closed is not None or wid >= self._target_workers:
                        break
                batch = self._take(self.max_batch_size)
                if not batch:
                    continue
                batch.sort(key=lambda e: e.length)
                items = [e.item for e in batch]
                metrics.BATCH_SIZE.labels(self.name).observe(len(items))
                started = time.perf_counter()
                self._in_flight += 1
                try:
                    results = await loop.run_in_executor(self._executor, self._run_batch, items)
                    if len(results) != len(items):
                        raise RuntimeError(f"model returned {len(results)} results for {len(items)} inputs")
                except Exception as exc:  # model failure: fail the callers, keep serving
                    self.errors += 1
                    log.exception("inference batch failed in [%s]", self.name)
                    for e in batch:
                        e.request.fail(exc)
                else:
                    for e, result in zip(batch, results, strict=True):
                        e.request.deliver(e.index, result)
                finally:
                    self._in_flight -= 1
                    self.busy_s += time.perf_counter() - started
                    self.batches += 1
                    self.items += len(items)
                    self.throughput.add(len(items))
        finally:
            # Hand the wake-up on, so that no queued item is left without a worker noticing.
            if self._queued:
                self._wakeup.set()

    def _take(self, n: int) -> list[_Entry]:
        batch: list[_Entry] = []
        queue = self._queue
        while queue and len(batch) < n:
            entry = queue.popleft()
            if entry.request.cancelled:
                self._dead -= 1
                continue
            entry.request.queued -= 1
            self._queued -= 1
            batch.append(entry)
        return batch

    # -- callers -------------------------------------------------------------------------

    async def submit(self, items: list[Any]) -> list[Any]:
        """Queue ``items`` and wait for their results (same order). Cancel the awaiting task
        (e.g. with :func:`asyncio.timeout`) to drop the still-queued items."""
        if not items:
            return []
        if self._closed is not None:
            raise self._closed_error()
        n = len(items)
        if self._queued + n > self.max_queue:
            self.rejected += 1
            raise too_many_requests(
                f"[{self.name}] inference process queue is full. Unable to execute command "
                f"(queue_capacity [{self.max_queue}], queued [{self._queued}], requested [{n}])",
                retry_after_s=1,
            )
        loop = asyncio.get_running_loop()
        request = _Request(loop.create_future(), n)
        length = self._length
        self._queue.extend(_Entry(request, i, item, length(item)) for i, item in enumerate(items))
        self._queued += n
        self.last_access = time.time()
        self._wakeup.set()
        try:
            return await request.future
        except BaseException:  # cancelled (timeout, client gone) or failed: drop what is left
            self._drop(request)
            raise

    def _drop(self, request: _Request) -> None:
        if request.cancelled:
            return
        request.cancelled = True
        if request.queued:
            self._queued -= request.queued
            self._dead += request.queued
            request.queued = 0
        if not request.future.done():
            request.future.cancel()
        # Compact when cancelled entries dominate (e.g. callers timing out while no worker runs).
        if self._dead > 1024 and self._dead > self._queued:
            self._queue = deque(e for e in self._queue if not e.request.cancelled)
            self._dead = 0

    # -- shutdown ------------------------------------------------------------------------

    def _closed_error(self) -> EsError:
        # A fresh exception per caller: one shared instance would collect every raise's traceback.
        c = self._closed or unavailable(f"[{self.name}] is shut down")
        return EsError(c.status, c.type, c.reason, headers=dict(c.headers), **c.extra)

    async def close(self, error: EsError | None = None) -> None:
        """Stop the workers (running batches finish) and fail everything still queued."""
        if self._closed is not None:
            return
        self._closed = error or unavailable(f"[{self.name}] is shutting down")
        self._target_workers = 0
        self._wakeup.set()
        while self._queue:
            entry = self._queue.popleft()
            if not entry.request.cancelled:
                entry.request.fail(self._closed_error())
        self._queued = self._dead = 0
        workers, self._workers = list(self._workers.values()), {}
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
