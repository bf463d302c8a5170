"""The write path's side of Elasticsearch, with one caller's credentials: sending a bulk
body and reading the stored versions of documents (for partial updates and for reusing
embeddings already stored)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..es.caller import Caller
from ..es.node import NodeVersion

# URL parameters of ``_bulk`` passed on with the bulks the sidecar sends (``pipeline`` is
# resolved item by item instead).
BULK_PARAMS = {"refresh", "timeout", "wait_for_active_shards", "require_alias", "routing", "_source",
               "_source_includes", "_source_excludes", "list_executed_pipelines", "require_data_stream",
               "error_trace", "pretty", "human"}


@dataclass
class StoredDoc:
    source: dict[str, Any]
    seq_no: int | None
    primary_term: int | None


# (index, id, routing) of a document to read.
DocKey = tuple[str, str, "str | None"]


class Documents:
    def __init__(self, caller: Caller, node_version: NodeVersion, params: Mapping[str, str] | None = None,
                 default_index: str | None = None) -> None:
        """``params`` are the write request's URL parameters; ``default_index`` the index of
        ``/{index}/_bulk`` (items forwarded untouched may rely on it)."""
        self.caller = caller
        self.node_version = node_version
        self.bulk_params = {k: v for k, v in (params or {}).items() if k in BULK_PARAMS}
        self.bulk_path = f"/{quote(default_index, safe=',*')}/_bulk" if default_index else "/_bulk"

    async def bulk(self, body: bytes) -> tuple[int, Any]:
        answer = await self.caller.send("POST", self.bulk_path, params=self.bulk_params, raw=body)
        return answer.status, answer.body

    async def fetch(self, keys: list[DocKey]) -> list[StoredDoc | None]:
        """The stored documents (with their vectors), None for those not found."""
        docs = []
        for index, doc_id, routing in keys:
            entry: dict[str, Any] = {"_index": index, "_id": doc_id}
            if routing is not None:
                entry["routing"] = routing
            docs.append(entry)
        answer = await self.caller.send("POST", "/_mget", {"docs": docs}, await self.node_version.vectors_params())
        if answer.status != 200 or not isinstance(answer.body, dict):
            return [None] * len(keys)
        return [StoredDoc(d.get("_source") or {}, d.get("_seq_no"), d.get("_primary_term")) if d.get("found")
                else None for d in answer.body.get("docs", [])]
