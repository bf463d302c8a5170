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

    def __call__(self, items: list[str], lengths: list[int]) -> list[str]:
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

    def slow(items, lengths):
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
    def flaky(items, lengths):
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


async def test_idle_worker_starts_at_once_whatever_the_batch_wait():
    # An hour of max_batch_wait_ms: a lone request must not wait for it when a worker is free.
    rec = Recorder()
    b = MicroBatcher(rec, name="t", max_batch_size=32, max_batch_wait_ms=3_600_000)
    b.set_workers(1)
    assert await asyncio.wait_for(b.submit(["q"]), 30) == ["Q"]
    assert await asyncio.wait_for(b.submit(["r", "s"]), 30) == ["R", "S"]
    await b.close()


class Gated:
    """Blocks every batch holding ``"block"`` until the gate opens; records the batches."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, items: list[str], lengths: list[int]) -> list[str]:
        if "block" in items:
            self.gate.wait(10)
        self.batches.append(list(items))
        return [s.upper() for s in items]


async def _until(predicate) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_batches_grow_while_the_worker_is_busy():
    fn = Gated()
    b = MicroBatcher(fn, name="t", max_batch_size=16, max_batch_wait_ms=0)
    b.set_workers(1)
    first = asyncio.create_task(b.submit(["block"]))
    await _until(lambda: b.in_flight == 1)
    calls = [asyncio.create_task(b.submit([f"c{i}"])) for i in range(10)]
    await _until(lambda: b.queued == 10)
    fn.gate.set()
    assert await first == ["BLOCK"]
    assert [await c for c in calls] == [[f"C{i}"] for i in range(10)]
    assert fn.batches == [["block"], sorted(f"c{i}" for i in range(10))]  # one batch of all ten
    await b.close()


async def test_concurrent_short_and_long_requests_are_batched_by_length():
    fn = Gated()
    b = MicroBatcher(fn, name="t", max_batch_size=4, max_batch_wait_ms=0)
    b.set_workers(1)
    blocker = asyncio.create_task(b.submit(["block"]))
    await _until(lambda: b.in_flight == 1)
    shorts = [f"s{i}" for i in range(4)]
    longs = [f"long text number {i} " * 20 for i in range(4)]
    # Interleaved arrivals, and one request holding both a short and a long item.
    calls = [asyncio.create_task(b.submit([x])) for pair in zip(shorts[:3], longs[:3], strict=True) for x in pair]
    mixed = asyncio.create_task(b.submit([longs[3], shorts[3]]))
    await _until(lambda: b.queued == 8)
    fn.gate.set()
    await blocker
    expected = [[x.upper()] for pair in zip(shorts[:3], longs[:3], strict=True) for x in pair]
    assert [await c for c in calls] == expected
    assert await mixed == [longs[3].upper(), shorts[3].upper()]  # the caller's order
    assert sorted(map(sorted, fn.batches[1:])) == [sorted(longs), sorted(shorts)]
    await b.close()


async def test_given_lengths_group_items_instead_of_characters():
    fn = Gated()
    b = MicroBatcher(fn, name="t", max_batch_size=2, max_batch_wait_ms=0)
    b.set_workers(1)
    blocker = asyncio.create_task(b.submit(["block"]))
    await _until(lambda: b.in_flight == 1)
    # Equal characters; the caller knows (e.g. in tokens) that w and y are short.
    call = asyncio.create_task(b.submit(["w1", "x2", "y3", "z4"], [1, 50, 2, 60]))
    await _until(lambda: b.queued == 4)
    fn.gate.set()
    await blocker
    assert await call == ["W1", "X2", "Y3", "Z4"]
    assert fn.batches[1:] == [["w1", "y3"], ["x2", "z4"]]
    await b.close()


async def test_oldest_item_is_not_starved_by_shorter_ones():
    fn = Gated()
    b = MicroBatcher(fn, name="t", max_batch_size=4, max_batch_wait_ms=0)
    b.set_workers(1)
    blocker = asyncio.create_task(b.submit(["block"]))
    await _until(lambda: b.in_flight == 1)
    long_ = asyncio.create_task(b.submit(["a long text " * 30]))
    await _until(lambda: b.queued == 1)
    shorts = asyncio.create_task(b.submit([f"s{i}" for i in range(12)]))
    await _until(lambda: b.queued == 13)
    fn.gate.set()
    await asyncio.gather(blocker, long_, shorts)
    assert "a long text " * 30 in fn.batches[1]  # the oldest item goes first
    assert max(map(len, fn.batches)) <= 4
    await b.close()


async def test_batch_wait_applies_only_while_another_batch_runs():
    fn = Gated()
    b = MicroBatcher(fn, name="t", max_batch_size=2, max_batch_wait_ms=3_600_000)
    b.set_workers(2)
    blocker = asyncio.create_task(b.submit(["block"]))  # first worker: started at once
    await _until(lambda: b.in_flight == 1)
    y = asyncio.create_task(b.submit(["y"]))
    await asyncio.sleep(0.05)
    assert not y.done()  # the second worker waits for a fuller batch ...
    z = asyncio.create_task(b.submit(["z"]))
    assert await asyncio.wait_for(asyncio.gather(y, z), 30) == [["Y"], ["Z"]]  # ... until it is full
    assert not blocker.done() and fn.batches == [["y", "z"]]
    w = asyncio.create_task(b.submit(["w"]))
    await asyncio.sleep(0.05)
    assert not w.done()
    fn.gate.set()  # no other batch running any more: it goes
    assert await asyncio.wait_for(w, 30) == ["W"]
    await blocker
    await b.close()


async def test_request_larger_than_the_queue_says_so_without_retry_after():
    b = MicroBatcher(Recorder(), name="dep", max_batch_size=2, max_queue=4)
    b.set_workers(1)
    with pytest.raises(EsError) as e:
        await b.submit(["a", "b", "c", "d", "e"])
    assert e.value.status == 429 and e.value.type == "es_rejected_execution_exception"
    assert "Retry-After" not in e.value.headers
    assert e.value.reason == (
        "[dep] request of [5] inputs exceeds the inference queue capacity [4] and can never be "
        "queued; split it into requests of at most [4] inputs"
    )
    assert b.rejected == 1 and b.queued == 0
    assert await b.submit(["a", "b", "c", "d"]) == ["A", "B", "C", "D"]
    await b.close()


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
    # Every item lands in exactly one sub-batch, in order.
    lengths = sorted((i * 37) % 120 + 1 for i in range(100))
    plans = plan_batches(lengths, max_batch_size=32, max_tokens=2_000)
    assert [i for p in plans for i in range(p.start, p.stop)] == list(range(100))
    assert all(p.stop - p.start <= 32 and (p.stop - p.start) * lengths[p.stop - 1] <= 2_000 for p in plans)


def test_plan_batches_weighs_padding_against_the_cost_of_a_pass():
    lengths = [10] * 16 + [40] * 16  # one pass pads half of the short items' 640 tokens
    cheap_pass = plan_batches(lengths, max_batch_size=32, max_tokens=100_000, overhead_tokens=64)
    assert [(p.start, p.stop) for p in cheap_pass] == [(0, 16), (16, 32)]
    costly_pass = plan_batches(lengths, max_batch_size=32, max_tokens=100_000, overhead_tokens=4096)
    assert [(p.start, p.stop) for p in costly_pass] == [(0, 32)]
