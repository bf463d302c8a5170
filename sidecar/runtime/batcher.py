"""Micro-batching queue.

Callers :meth:`MicroBatcher.submit` lists of items; the items of all callers wait in one
bounded queue kept **sorted by length**. ``workers`` worker tasks (one per allocation) each
take up to ``max_batch_size`` items and run them through ``run_batch(items, lengths)`` in a
thread pool, then route each result back to its caller, in the caller's order.

- **No idle wait.** A free worker starts a batch as soon as items are queued; batches grow by
  themselves while every worker is busy (whatever arrived meanwhile is taken next). Only
  while another batch of the same queue is running may a free worker wait up to
  ``max_batch_wait_ms`` for its batch to fill (off with ``0``); a worker that would
  otherwise be the only one running never waits.
- **Batches of similar length.** Callers may give each item's exact length (a model's token
  count); otherwise ``length(item)`` is used. A batch is anchored on the oldest queued item (so no item
  waits behind an endless stream of others) and filled with the ``max_batch_size`` queued
  items closest to it in length, so concurrent short and long requests are not padded to
  each other's length.
- The queue is bounded (``max_queue`` items): a request that does not fit is rejected whole
  with ``429`` (``es_rejected_execution_exception``, ``Retry-After``) — no unbounded growth.
  A request with more items than the whole queue holds can never fit: it is rejected with a
  reason that says so and no ``Retry-After`` (as Elasticsearch's inference queue rejects
  it); the caller must split it.
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
from bisect import bisect_left, insort
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
    __slots__ = ("request", "index", "item", "length", "seq", "taken")

    def __init__(self, request: _Request, index: int, item: Any, length: int, seq: int) -> None:
        self.request = request
        self.index = index
        self.item = item
        self.length = length
        self.seq = seq  # arrival order
        self.taken = False


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
        run_batch: Callable[[list[Any], list[int]], list[Any]],
        *,
        name: str = "batcher",
        length: Callable[[Any], int] = len,
        max_batch_size: int = 32,
        max_batch_wait_ms: float = 0.0,
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
        # The queue twice: by (length, arrival) to cut batches of similar length, and in
        # arrival order to find the oldest item. Taken and cancelled entries leave the
        # arrival deque lazily (when they reach its head).
        self._sorted: list[tuple[int, int, _Entry]] = []
        self._arrivals: deque[_Entry] = deque()
        self._seq = 0
        self._queued = 0  # live (not cancelled) items in the queue
        self._dead = 0  # cancelled items still in the queue
        self._wakeup = asyncio.Event()  # items queued (idle workers wait on it)
        self._changed = asyncio.Event()  # items queued or a batch finished (a lingering worker waits on it)
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
        try:
            while self._closed is None and wid < self._target_workers:
                if self._queued == 0:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self._in_flight and self.max_batch_wait_s > 0 and self._queued < self.max_batch_size:
                    await self._linger()
                    if self._closed is not None or wid >= self._target_workers:
                        break
                batch = self._take(self.max_batch_size)
                if batch:
                    await self._run(batch)
        finally:
            # Hand the wake-up on, so that no queued item is left without a worker noticing.
            if self._queued:
                self._wakeup.set()

    async def _linger(self) -> None:
        """Another batch is running: give this one up to ``max_batch_wait_ms`` to fill. Ends
        early when it is full or when no other batch runs any more."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_batch_wait_s
        while self._in_flight and self._queued < self.max_batch_size and self._closed is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                return

    async def _run(self, batch: list[_Entry]) -> None:
        items = [e.item for e in batch]
        lengths = [e.length for e in batch]
        metrics.BATCH_SIZE.labels(self.name).observe(len(items))
        started = time.perf_counter()
        self._in_flight += 1
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self._run_batch, items, lengths)
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
            self._changed.set()
            self.busy_s += time.perf_counter() - started
            self.batches += 1
            self.items += len(items)
            self.throughput.add(len(items))

    def _take(self, n: int) -> list[_Entry]:
        """Up to ``n`` live items, sorted by length: the oldest queued item and the items
        closest to it in length."""
        arrivals = self._arrivals
        while arrivals and (arrivals[0].taken or arrivals[0].request.cancelled):
            arrivals.popleft()
        if not arrivals:
            return []
        ordered = self._sorted
        if len(ordered) <= n:
            window, self._sorted = ordered, []
        else:
            anchor = arrivals[0]
            pos = bisect_left(ordered, (anchor.length, anchor.seq))
            # Of the n-item windows holding the anchor, the one with the least length spread
            # (then the one starting at the anchor: the longer neighbours, in arrival order).
            lo, hi = max(0, pos - n + 1), min(pos, len(ordered) - n)
            start = min(range(lo, hi + 1), key=lambda s: (ordered[s + n - 1][0] - ordered[s][0], pos - s))
            window = ordered[start : start + n]
            del ordered[start : start + n]
        batch: list[_Entry] = []
        for _, _, entry in window:
            if entry.request.cancelled:
                self._dead -= 1
                continue
            entry.taken = True
            entry.request.queued -= 1
            self._queued -= 1
            batch.append(entry)
        return batch

    # -- callers -------------------------------------------------------------------------

    async def submit(self, items: list[Any], lengths: list[int] | None = None) -> list[Any]:
        """Queue ``items`` and wait for their results (same order). ``lengths`` (one per item)
        replace ``length(item)`` for grouping. Cancel the awaiting task (e.g. with
        :func:`asyncio.timeout`) to drop the still-queued items."""
        if not items:
            return []
        if self._closed is not None:
            raise self._closed_error()
        n = len(items)
        if n > self.max_queue:
            self.rejected += 1
            # No Retry-After: retrying the same request can never succeed.
            raise EsError(
                429,
                "es_rejected_execution_exception",
                f"[{self.name}] request of [{n}] inputs exceeds the inference queue capacity "
                f"[{self.max_queue}] and can never be queued; split it into requests of at most "
                f"[{self.max_queue}] inputs",
            )
        if self._queued + n > self.max_queue:
            self.rejected += 1
            raise too_many_requests(
                f"[{self.name}] inference process queue is full. Unable to execute command "
                f"(queue_capacity [{self.max_queue}], queued [{self._queued}], requested [{n}])",
                retry_after_s=1,
            )
        loop = asyncio.get_running_loop()
        request = _Request(loop.create_future(), n)
        if lengths is None or len(lengths) != n:
            lengths = [self._length(item) for item in items]
        seq = self._seq
        self._seq += n
        entries = [_Entry(request, i, item, lengths[i], seq + i) for i, item in enumerate(items)]
        self._arrivals.extend(entries)
        if n == 1:
            insort(self._sorted, (entries[0].length, seq, entries[0]))
        else:
            self._sorted.extend((e.length, e.seq, e) for e in entries)
            self._sorted.sort()  # (length, seq) is unique: entries themselves are never compared
        self._queued += n
        self.last_access = time.time()
        self._wakeup.set()
        self._changed.set()
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
            self._sorted = [t for t in self._sorted if not t[2].request.cancelled]
            self._arrivals = deque(e for e in self._arrivals if not (e.taken or e.request.cancelled))
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
        self._changed.set()
        queued, self._sorted, self._arrivals = self._sorted, [], deque()
        for _, _, entry in queued:
            if not entry.request.cancelled:
                entry.request.fail(self._closed_error())
        self._queued = self._dead = 0
        workers, self._workers = list(self._workers.values()), {}
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
