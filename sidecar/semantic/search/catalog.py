"""Index metadata a search needs, read with the sidecar's credentials: the concrete indices
an expression names with their semantic_text fields, field types, and what the node runs
itself."""

from __future__ import annotations

import time
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch
from elasticsearch import ConnectionError as EsConnectionError

from ...errors import unavailable
from ...singleflight import SingleFlight
from ..metadata import SemanticIndices
from ..queries.context import IndexInfo
from ..queries.errors import parsing_error


class IndexCatalog:
    """The concrete indices a search reads, with their creation version and semantic fields.
    Answers are cached for ``ttl_s``, and until the semantic metadata is invalidated (a mapping
    change of this process); after that, concurrent searches of one expression share one
    re-read."""

    def __init__(self, es: AsyncElasticsearch, semantic: SemanticIndices, ttl_s: float = 1.0) -> None:
        self.es = es
        self.semantic = semantic
        self.ttl_s = ttl_s
        # key -> (read at, semantic generation it was built on, answer)
        self._cache: dict[tuple[str, str], tuple[float, int, dict[str, IndexInfo]]] = {}
        self._loads: SingleFlight[dict[str, IndexInfo]] = SingleFlight()

    async def targets(self, expression: str | None, expand_wildcards: str | None = None) -> dict[str, IndexInfo]:
        expression = expression or "_all"
        key = (expression, expand_wildcards or "")
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s and hit[1] == self.semantic.generation:
            return hit[2]
        generation = self.semantic.generation
        return await self._loads.run((key, generation), lambda: self._load(key, generation))

    async def _load(self, key: tuple[str, str], generation: int) -> dict[str, IndexInfo]:
        now = time.monotonic()
        expression, expand_wildcards = key
        semantics = await self.semantic.resolve(expression)
        try:
            kwargs: dict[str, Any] = {"index": expression, "name": "index.version.created,index.number_of_shards",
                                      "flat_settings": True,
                                      "ignore_unavailable": True, "allow_no_indices": True}
            if expand_wildcards:
                kwargs["expand_wildcards"] = expand_wildcards
            resp = await self.es.indices.get_settings(**kwargs)
            settings = resp.body
        except EsConnectionError as exc:
            raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        except ApiError:
            settings = {}
        result: dict[str, IndexInfo] = {}
        for index, body in settings.items():
            values = body.get("settings") or {}
            try:
                version = int(values.get("index.version.created", 0))
                shards = int(values.get("index.number_of_shards", 1))
            except ValueError:
                version, shards = 0, 1
            result[index] = IndexInfo(index, version, semantics.get(index), shards)
        for index, sem in semantics.items():
            result.setdefault(index, IndexInfo(index, 0, sem))
        if generation == self.semantic.generation:
            self._cache[key] = (now, generation, result)
        return result

    async def field_types(self, field_name: str, indices: list[str]) -> dict[str, dict[str, Any] | None]:
        out: dict[str, dict[str, Any] | None] = {i: None for i in indices}
        if not indices:
            return out
        if not isinstance(field_name, str) or not field_name:
            raise parsing_error("[semantic] requires a non-empty [field]")
        try:
            resp = await self.es.indices.get_field_mapping(
                index=",".join(indices), fields=field_name, ignore_unavailable=True, allow_no_indices=True)
        except EsConnectionError as exc:
            raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        except ApiError:
            return out
        leaf = field_name.rsplit(".", 1)[-1]
        for index, body in resp.body.items():
            found = (body.get("mappings") or {}).get(field_name)
            if found and index in out:
                out[index] = (found.get("mapping") or {}).get(leaf) or {"type": "object"}
        return out
