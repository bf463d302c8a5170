"""The one shape of the sidecar's caches of what it reads from Elasticsearch.

Entries are kept ``ttl_s`` seconds; an expired entry is re-read by one load while concurrent
readers wait for it (:class:`~sidecar.singleflight.SingleFlight`); a write of this process
forgets the key, and a load that began before that write caches nothing. The loader may
reuse the stale entry (to re-check a version instead of re-reading a document)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..singleflight import SingleFlight

V = TypeVar("V")


@dataclass
class Entry(Generic[V]):
    value: V
    at: float
    # The document version the value was read at (``_seq_no``, ``_primary_term``), if any.
    version: tuple[int, int] | None = None


# Reads the value again given the entry it may reuse; None: nothing to cache (forget the key).
Loader = Callable[["Entry[V] | None"], Awaitable["Entry[V] | None"]]


class ReadCache(Generic[V]):
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[Hashable, Entry[V]] = {}
        self._loads: SingleFlight[Entry[V] | None] = SingleFlight()

    def fresh(self, key: Hashable) -> Entry[V] | None:
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry.at < self.ttl_s:
            return entry
        return None

    async def get(self, key: Hashable, load: Loader[V], default: V) -> V:
        """The cached value of ``key`` within its TTL, else what ``load`` reads (``default``
        when it finds nothing)."""
        entry = self.fresh(key)
        if entry is None:
            entry = await self._loads.run(key, lambda: self._load(key, load))
        return default if entry is None else entry.value

    async def _load(self, key: Hashable, load: Loader[V]) -> Entry[V] | None:
        generation = self._loads.generation
        entry = await load(self._entries.get(key))
        if generation == self._loads.generation:
            if entry is None:
                self._entries.pop(key, None)
            else:
                self._entries[key] = entry
        return entry

    def forget(self, key: Hashable | None = None) -> None:
        """After a write of this process (of every key when None)."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)
        self._loads.forget(key)
