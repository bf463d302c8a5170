"""Which retrievers the node runs itself, learnt once per kind by asking it: a search of a
missing index with the retriever; ``unknown retriever [kind]`` means the node lacks it (the
plugin that brings it is not installed), any other answer that it has it."""

from __future__ import annotations

import asyncio
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch
from elasticsearch import ConnectionError as EsConnectionError

from ...errors import unavailable

PROBE_INDEX = "sidecar-capability-probe-does-not-exist"
_LEAF = {"standard": {"query": {"match_all": {}}}}
PROBES: dict[str, dict[str, Any]] = {
    "rrf": {"retrievers": [_LEAF, _LEAF]},
    "linear": {"retrievers": [{"retriever": _LEAF, "weight": 1.0}]},
    "pinned": {"ids": ["probe"], "retriever": _LEAF},
    "rule": {"ruleset_ids": ["probe"], "match_criteria": {"probe": "probe"}, "retriever": _LEAF},
    "rescorer": {"retriever": _LEAF, "rescore": {"query": {"rescore_query": {"match_all": {}}}}},
    "diversify": {"type": "mmr", "field": "probe", "lambda": 0.5, "query_vector": [1.0], "retriever": _LEAF},
    "text_similarity_reranker": {"retriever": _LEAF, "field": "probe", "inference_text": "probe"},
}


class NativeRetrievers:
    def __init__(self, es: AsyncElasticsearch) -> None:
        self.es = es
        self.known: dict[str, bool] = {}
        self._lock = asyncio.Lock()

    async def has(self, kind: str) -> bool:
        if kind in ("standard", "knn"):
            return True
        if kind not in PROBES:
            return False
        if kind not in self.known:
            async with self._lock:
                if kind not in self.known:
                    self.known[kind] = await self._probe(kind)
        return self.known[kind]

    async def _probe(self, kind: str) -> bool:
        try:
            await self.es.search(index=PROBE_INDEX, ignore_unavailable=True, allow_no_indices=True, size=0,
                                 retriever={kind: PROBES[kind]})
            return True
        except EsConnectionError as exc:
            raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        except ApiError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            return error.get("reason") != f"unknown retriever [{kind}]"
