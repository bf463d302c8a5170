"""The sidecar's own indices: created hidden, and created safely by several sidecars at once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from elasticsearch import AsyncElasticsearch

from sidecar.es.system_indices import ensure_hidden_indices

pytestmark = pytest.mark.es


async def test_sidecars_starting_together_create_each_index_once_and_hidden(es_url):
    es = AsyncElasticsearch(es_url)
    name = f".sidecar-test-system-{uuid.uuid4().hex[:8]}"
    mapping = {"dynamic": "strict", "properties": {"f": {"type": "keyword"}}}
    try:
        # Every caller sees the index missing, then all create it: the losers' 400 is no error.
        await asyncio.gather(*(ensure_hidden_indices(es, {name: mapping}, wait_for=name) for _ in range(6)))
        settings = (await es.indices.get_settings(index=name, expand_wildcards="all"))[name]["settings"]["index"]
        assert settings["hidden"] == "true" and settings["number_of_shards"] == "1"
        assert (await es.indices.get_mapping(index=name, expand_wildcards="all"))[name]["mappings"] == mapping
    finally:
        await es.options(ignore_status=404).indices.delete(index=name, expand_wildcards="all")
        await es.close()
