"""The version of the Elasticsearch node behind the sidecar, and what follows from it.

Asked once (``GET _nodes/_local`` with the sidecar's own client, single-flight) and kept for
the life of the process; an unreachable node is asked again on the next call.

From 9.1 an index keeps ``dense_vector`` and ``sparse_vector`` values out of ``_source`` by
default (``index.mapping.exclude_source_vectors``) and gives them back only when a read asks
with ``_source_exclude_vectors=false``. The chunk embeddings the sidecar stores under
``_sidecar_inference`` are such values: every read of the sidecar that needs them back (reuse
on update, ``_inference_fields``, highlighting, reindex) asks that way, so the vectors are
stored once, in the index, as Elasticsearch intends.
"""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch

from ..singleflight import SingleFlight

# The first minor whose new indices exclude vectors from _source.
EXCLUDE_SOURCE_VECTORS_SINCE = (9, 1)


def parse_version(number: str) -> tuple[int, int, int]:
    parts = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in number.split("-")[0].split(".")[:3]]
    return (*parts, 0, 0, 0)[:3]  # type: ignore[return-value]


class NodeVersion:
    def __init__(self, es: AsyncElasticsearch) -> None:
        self.es = es
        self._version: tuple[int, int, int] | None = None
        self._loads: SingleFlight[tuple[int, int, int]] = SingleFlight()

    async def get(self) -> tuple[int, int, int]:
        if self._version is None:
            self._version = await self._loads.run("version", self._load)
        return self._version

    async def _load(self) -> tuple[int, int, int]:
        resp = await self.es.nodes.info(node_id="_local", filter_path="nodes.*.version")
        nodes: dict[str, Any] = resp.body.get("nodes") or {}
        return parse_version(next(iter(nodes.values()))["version"])

    async def major(self) -> int:
        return (await self.get())[0]

    async def vectors_params(self) -> dict[str, str]:
        """URL parameters that make a ``_search``, ``_mget`` or ``_doc`` read return the vectors
        stored in ``_source`` on this node (none needed before 9.1)."""
        if await self.get() >= EXCLUDE_SOURCE_VECTORS_SINCE:
            return {"_source_exclude_vectors": "false"}
        return {}
