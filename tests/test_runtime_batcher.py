"""The micro-batching queue, with a plain-Python batch function (no model needed)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sidecar.errors import EsError
from sidecar.runtime.batcher import MicroBatcher
from sidecar.runtime.models import plan_batches


class Recorder:
    """A batch function that records its batches (and the thread it ran in)."""

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.gate = gate

    def __call__(self, items: list[str]) -> list[str]:
        if self.gate is not None:
            self.gate.wait(5)
        if self.delay:
            time.sleep(self.delay)
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        return [s.upper() for s in items]


async def test_results_routed_back_in_order_and_batched():
    rec = Recorder(delay=0.01)
    b = MicroBatcher(rec, name="t", max_batch_size=16, max_batch_wait_ms=5)
    b.set_workers(1)
    calls = [[f"c{i}-a", f"c{i}-bb"] for i in range(40)]
    results = await asyncio.gather(*[b.submit(c) for c in calls])
    assert results == [[s.upper() for s in c] for c in calls]
    assert b.batches == len(rec.batches) < len(calls)
    assert max(len(x) for x in rec.batches) <= 16
    assert all(batch == sorted(batch, key=len) for batch in rec.batches)  # length-sorted
    assert all(not t.startswith("MainThread") for t in rec.threads)  # never on the loop
    await b.close()


async def test_queue_bound_rejects_with_429_and_retry_after():
    gate = threading.Event()
    b = MicroBatcher(Recorder(gate=gate), name="dep", max_batch_size=2, max_batch_wait_ms=0, max_queue=4)
    b.set_workers(1)
    first = asyncio.create_task(b.submit(["a", "b"]))  # taken by the worker, blocked on the gate
    await asyncio.sleep(0.05)
    second = asyncio.create_task(b.submit(["c", "d", "e", "f"]))  # fills the queue
    await asyncio.sleep(0.01)
    assert b.queued == 4
    with pytest.raises(EsError) as e:
        await b.submit(["g"])
    assert e.value.status == 429
    assert e.value.type == "es_rejected_execution_exception"
    assert e.value.headers["Retry-After"] == "1"
    assert "queue is full" in e.value.reason
    assert b.rejected == 1 and b.queued == 4  # rejected whole, nothing half-queued
    gate.set()
    assert await first == ["A", "B"]
    assert await second == ["C", "D", "E", "F"]
    await b.close()


async def test_timeout_drops_pending_items():
    gate = threading.Event()
    rec = Recorder(gate=gate)
    b = MicroBatcher(rec, name="t", max_batch_size=1, max_batch_wait_ms=0)
    b.set_workers(1)
    busy = asyncio.create_task(b.submit(["x"]))
    await asyncio.sleep(0.05)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await b.submit(["y1", "y2", "y3"])
    assert b.queued == 0  # the timed-out caller's items left the queue
    gate.set()
    assert await busy == ["X"]
    assert await b.submit(["z"]) == ["Z"]
    assert [x for batch in rec.batches for x in batch] == ["x", "z"]
    await b.close()


async def test_zero_workers_hold_items_until_scaled_up():
    rec = Recorder()
    b = MicroBatcher(rec, name="t", max_batch_size=8, max_batch_wait_ms=0)
    task = asyncio.create_task(b.submit(["a"]))
    await asyncio.sleep(0.05)
    assert not task.done() and b.queued == 1
    b.set_workers(2)
    assert await asyncio.wait_for(task, 5) == ["A"]
    b.set_workers(0)
    task = asyncio.create_task(b.submit(["b"]))
    await asyncio.sleep(0.05)
    assert not task.done()
    b.set_workers(1)
    assert await asyncio.wait_for(task, 5) == ["B"]
    await b.close()


async def test_parallel_workers_run_batches_concurrently():
    running = 0
    peak = 0
    lock = threading.Lock()

    def slow(items):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return items

    b = MicroBatcher(slow, name="t", max_batch_size=1, max_batch_wait_ms=0)
    b.set_workers(3)
    await asyncio.gather(*[b.submit([str(i)]) for i in range(6)])
    assert peak == 3
    await b.close()


async def test_batch_failure_fails_callers_and_keeps_serving():
    def flaky(items):
        if "boom" in items:
            raise RuntimeError("model exploded")
        return items

    b = MicroBatcher(flaky, name="t", max_batch_size=1, max_batch_wait_ms=0)
    b.set_workers(1)
    with pytest.raises(RuntimeError, match="exploded"):
        await b.submit(["boom"])
    assert await b.submit(["ok"]) == ["ok"]
    assert b.errors == 1
    await b.close()


async def test_close_fails_queued_callers():
    b = MicroBatcher(Recorder(), name="t")
    task = asyncio.create_task(b.submit(["a"]))
    await asyncio.sleep(0.01)
    await b.close()
    with pytest.raises(EsError):
        await task
    with pytest.raises(EsError):
        await b.submit(["b"])


def test_plan_batches_splits_on_length_jumps():
    short, long_ = [10] * 31, [256]
    plans = plan_batches(short + long_, max_batch_size=32, max_tokens=100_000)
    assert [(p.start, p.stop) for p in plans] == [(0, 31), (31, 32)]
    # Similar lengths stay together, bounded by max_batch_size and max_tokens.
    assert len(plan_batches([100] * 64, max_batch_size=32, max_tokens=100_000)) == 2
    assert len(plan_batches([100] * 10, max_batch_size=32, max_tokens=500)) == 2
    # Tiny inputs are never split for padding's sake.
    assert len(plan_batches([1, 2, 3, 8], max_batch_size=32, max_tokens=100_000)) == 1
    assert plan_batches([], max_batch_size=4, max_tokens=10) == []
