"""Query embeddings, cached: the same text searched again costs no inference.

Entries are keyed by the inference endpoint (its id plus a fingerprint of its settings, so an
updated endpoint never serves embeddings of its old configuration), the kind of result and
the text. Concurrent misses for one key share a single inference call. The cache is a bounded
LRU; it is a cache, nothing more: losing it only costs inference.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ..protocol.service import Endpoint

DENSE = "dense"
SPARSE = "sparse"


@dataclass(frozen=True)
class QueryEmbedding:
    """One query text embedded by one endpoint: ``vector`` (dense) or ``tokens`` (sparse)."""

    inference_id: str
    kind: str
    vector: tuple[float, ...] | None = None
    tokens: tuple[tuple[str, float], ...] | None = None
    element_type: str = "float"

    def token_dict(self) -> dict[str, float]:
        return dict(self.tokens or ())


def endpoint_fingerprint(endpoint: Endpoint) -> str:
    material = orjson.dumps(
        [endpoint.service, endpoint.task_type.value, endpoint.service_settings, endpoint.task_settings],
        option=orjson.OPT_SORT_KEYS,
        default=str,
    )
    return hashlib.sha1(material).hexdigest()[:16]


class QueryEmbeddingCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, ...], QueryEmbedding] = OrderedDict()
        self._inflight: dict[tuple[Any, ...], asyncio.Future[QueryEmbedding]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._entries), "hits": self.hits, "misses": self.misses,
                "max_entries": self.max_entries}

    async def get(
        self,
        endpoint: Endpoint,
        kind: str,
        text: str,
        compute: Callable[[], Awaitable[QueryEmbedding]],
    ) -> QueryEmbedding:
        key = (endpoint.inference_id, endpoint_fingerprint(endpoint), kind, text)
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return found
        pending = self._inflight.get(key)
        if pending is not None:
            self.hits += 1
            return await asyncio.shield(pending)
        self.misses += 1
        future: asyncio.Future[QueryEmbedding] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await compute()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(result)
        self._entries[key] = result
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return result
