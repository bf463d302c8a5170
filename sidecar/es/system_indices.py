"""The sidecar's own indices in Elasticsearch (endpoints, secrets, pipelines, trained models,
tasks): hidden, one shard, one replica wherever there is a node to hold it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch

SETTINGS = {"index": {"hidden": True, "number_of_shards": 1, "auto_expand_replicas": "0-1"}}


def _already_exists(exc: ApiError) -> bool:
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    return isinstance(error, dict) and error.get("type") == "resource_already_exists_exception"


async def ensure_hidden_indices(es: AsyncElasticsearch, mappings: Mapping[str, dict[str, Any]], *,
                                wait_for: str | None = None) -> None:
    """Create each index of ``mappings`` (name → mapping) that does not exist yet; one that
    another sidecar created meanwhile is fine. With ``wait_for``, then wait until that index
    is at least yellow. Other failures are raised as the client raised them."""
    for name, mapping in mappings.items():
        if await es.indices.exists(index=name, expand_wildcards="all"):
            continue
        try:
            await es.indices.create(index=name, settings=SETTINGS, mappings=mapping)
        except ApiError as exc:
            if not _already_exists(exc):
                raise
    if wait_for is not None:
        await es.cluster.health(index=wait_for, wait_for_status="yellow", timeout="30s")
