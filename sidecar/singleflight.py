"""At most one load per key: the way the sidecar's TTL caches re-check Elasticsearch.

When a cached entry has expired, the first request that wants it starts one load and the
requests that come while it runs wait for that load's answer (or its error) instead of asking
Elasticsearch themselves. A cache whose entries this process changes calls :meth:`SingleFlight.forget`
after each such change: later requests then start a new load rather than join one that began
before the change, and :attr:`SingleFlight.generation` lets a load that began before it leave
the cache alone::

    async def get(self, key):
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit.at < self.ttl_s:
            return hit.value
        return await self._loads.run(key, lambda: self._load(key))

    async def _load(self, key):
        now, generation = time.monotonic(), self._loads.generation
        value = await ask_elasticsearch(key)
        if generation == self._loads.generation:  # no change of this process since it began
            self._cache[key] = Entry(value, now)
        return value
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """At most one load per key at a time: whoever asks for a key while its load runs gets
    that load's result or error. A load runs as its own task, so a caller that goes away
    (a closed connection) does not cancel it for the others."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[T]] = {}
        # Counts the calls of forget(): a load that read it before a change can tell.
        self.generation = 0

    async def run(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: Hashable, task: asyncio.Future[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: the callers that awaited it raised it already

    def forget(self, key: Hashable | None = None) -> None:
        """After a change of this process: later callers of ``key`` (of every key when None)
        start a new load instead of joining one already running, and :attr:`generation`
        moves on."""
        self.generation += 1
        if key is None:
            self._running.clear()
        else:
            self._running.pop(key, None)


__all__ = ["SingleFlight"]
