"""Cached reads of index settings under concurrency: the indices a semantic search reads
(their versions and semantic fields) and the ingest pipelines of the index a write lands in.

Once a cached answer has expired, however many requests want it at the same moment, the
sidecar asks Elasticsearch once; changes made directly in Elasticsearch are seen once the
answer expires; a change of this process is never undone by an answer already on its way;
and when Elasticsearch is down every waiting request fails. Requests to Elasticsearch are
counted at a loopback HTTP proxy in front of it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from elasticsearch import AsyncElasticsearch

from sidecar.errors import EsError
from sidecar.ingest import Pipelines
from sidecar.semantic.layout import META_KEY
from sidecar.semantic.metadata import SemanticIndices
from sidecar.semantic.search.catalog import IndexCatalog

pytestmark = pytest.mark.es

CONCURRENT = 200


@pytest.fixture
async def through_proxy(proxy) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(proxy.url, max_retries=0)
    yield client
    await client.close()


def _meta(inference_id: str) -> dict:
    return {META_KEY: {"semantic_text": {"content": {"type": "semantic_text", "inference_id": inference_id}}}}


@pytest.fixture
async def prefix(direct) -> AsyncIterator[str]:
    """A name prefix for this test's indices, deleted afterwards."""
    name = f"test-cache-{uuid.uuid4().hex[:8]}"
    yield name
    await direct.indices.delete(index=f"{name}*", expand_wildcards="all", ignore_unavailable=True)


# -- the indices a semantic search reads -------------------------------------------------------------


@pytest.fixture
def catalog(through_proxy) -> IndexCatalog:
    """Re-reads Elasticsearch at every use (TTL 0)."""
    return IndexCatalog(through_proxy, SemanticIndices(through_proxy, ttl_s=0), ttl_s=0)


async def test_search_targets_are_read_once_for_many_requests(catalog, prefix, direct, proxy):
    index = f"{prefix}-docs"
    await direct.indices.create(index=index, settings={"number_of_replicas": 0}, mappings={"_meta": _meta("first")})
    for _ in range(2):  # nothing cached, then cached but expired: one read per wave of requests
        proxy.seen.clear()
        found = await asyncio.gather(*(catalog.targets(index) for _ in range(CONCURRENT)))
        assert all(f[index].semantics.fields["content"].inference_id == "first" for f in found)
        assert all(f[index].version_created > 0 for f in found)
        assert proxy.count("GET", "/_settings") == 1
        assert proxy.count("GET", "/_mapping") == 1


async def test_search_targets_see_changes_made_in_elasticsearch(catalog, prefix, direct):
    await direct.indices.create(index=f"{prefix}-a", settings={"number_of_replicas": 0})
    assert set(await catalog.targets(f"{prefix}-*")) == {f"{prefix}-a"}
    await direct.indices.create(index=f"{prefix}-b", settings={"number_of_replicas": 0},
                                mappings={"_meta": _meta("first")})
    found = await asyncio.gather(*(catalog.targets(f"{prefix}-*") for _ in range(CONCURRENT)))
    assert all(set(f) == {f"{prefix}-a", f"{prefix}-b"} for f in found)
    assert all(f[f"{prefix}-b"].semantics.fields["content"].inference_id == "first" for f in found)


async def test_search_targets_follow_a_mapping_change_of_this_process(catalog, prefix, direct, proxy):
    index = f"{prefix}-docs"
    await direct.indices.create(index=index, settings={"number_of_replicas": 0}, mappings={"_meta": _meta("first")})
    catalog.ttl_s = catalog.semantic.ttl_s = 3600  # from now on cached answers are served as they are
    assert (await catalog.targets(index))[index].semantics.fields["content"].inference_id == "first"
    await direct.indices.put_mapping(index=index, meta=_meta("second"))
    catalog.semantic.invalidate()  # as after a mapping change through the sidecar
    assert (await catalog.targets(index))[index].semantics.fields["content"].inference_id == "second"

    catalog.semantic.invalidate()
    proxy.hold("/_mapping")
    before = asyncio.create_task(catalog.targets(index))  # reads the old mapping, answer held
    await asyncio.wait_for(proxy.held.wait(), 30)
    await direct.indices.put_mapping(index=index, meta=_meta("third"))
    catalog.semantic.invalidate()
    after = asyncio.create_task(catalog.targets(index))
    await proxy.wait_for_count("GET", "/_mapping", 2)  # the later search reads the mapping itself
    proxy.release()
    assert (await before)[index].semantics.fields["content"].inference_id == "second"
    assert (await after)[index].semantics.fields["content"].inference_id == "third"
    assert (await catalog.targets(index))[index].semantics.fields["content"].inference_id == "third"


async def test_search_targets_with_elasticsearch_down_are_503_for_every_request(catalog, prefix, direct, proxy):
    index = f"{prefix}-docs"
    await direct.indices.create(index=index, settings={"number_of_replicas": 0})
    await proxy.stop_listening()
    results = await asyncio.gather(*(catalog.targets(index) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, EsError) and r.status == 503 for r in results), results
    await proxy.start()
    assert index in await catalog.targets(index)


# -- the ingest pipelines of the index a write lands in ------------------------------------------------

_DEFINITION = {"processors": [{"inference": {"model_id": "some-endpoint", "input_output": {
    "input_field": "text", "output_field": "vector"}}}]}


@pytest.fixture
async def pipelines(through_proxy, direct, prefix) -> AsyncIterator[tuple[Pipelines, str]]:
    """A pipeline with an inference processor held by the sidecar (stored as Elasticsearch
    would get it from ``PUT _ingest/pipeline``), and the pipelines of one sidecar process that
    re-reads index settings at every use (TTL 0)."""
    service = Pipelines(through_proxy, None, index=f".{prefix}-pipelines", ttl_s=3600, settings_ttl_s=0)
    pipeline_id = f"{prefix}-embed"
    await direct.ingest.put_pipeline(id=pipeline_id, body=await service.prepare(pipeline_id, _DEFINITION))
    await service.save(pipeline_id, _DEFINITION)
    assert await service.any_inference_pipelines()
    yield service, pipeline_id
    await direct.indices.delete(index=f"{prefix}*", expand_wildcards="all", ignore_unavailable=True)
    await direct.ingest.delete_pipeline(id=pipeline_id)


async def _plans(service: Pipelines, index: str) -> list:
    return await asyncio.gather(*(service.plan(index) for _ in range(CONCURRENT)))


async def test_index_pipelines_are_read_once_for_many_writes(pipelines, prefix, direct, proxy):
    service, pipeline_id = pipelines
    index = f"{prefix}-docs"
    await direct.indices.create(index=index, settings={"number_of_replicas": 0, "default_pipeline": pipeline_id})
    for _ in range(2):  # nothing cached, then cached but expired: one read per wave of writes
        proxy.seen.clear()
        plans = await _plans(service, index)
        assert all(p is not None and p.pipeline == pipeline_id for p in plans)
        assert proxy.count("GET", f"/{index}/_settings") == 1


async def test_pipelines_of_a_missing_index_are_read_once_for_many_writes(pipelines, prefix, direct, proxy):
    service, pipeline_id = pipelines
    await direct.indices.put_index_template(name=prefix, index_patterns=[f"{prefix}-new-*"],
                                            template={"settings": {"default_pipeline": pipeline_id}})
    try:
        proxy.seen.clear()
        plans = await _plans(service, f"{prefix}-new-1")
        assert all(p is not None and p.pipeline == pipeline_id for p in plans)
        assert proxy.count("GET", f"/{prefix}-new-1/_settings") == 1
        assert proxy.count("POST", f"/_index_template/_simulate_index/{prefix}-new-1") == 1
    finally:
        await direct.indices.delete_index_template(name=prefix)


async def test_index_pipelines_see_changes_made_in_elasticsearch(pipelines, prefix, direct):
    service, pipeline_id = pipelines
    index = f"{prefix}-docs"
    await direct.indices.create(index=index, settings={"number_of_replicas": 0})
    assert await _plans(service, index) == [None] * CONCURRENT
    await direct.indices.put_settings(index=index, settings={"index.default_pipeline": pipeline_id})
    assert {p.pipeline for p in await _plans(service, index)} == {pipeline_id}
    await direct.indices.put_settings(index=index, settings={"index.default_pipeline": None})
    assert await _plans(service, index) == [None] * CONCURRENT


async def test_invalidated_index_pipelines_are_not_undone_by_a_read_on_its_way(pipelines, prefix, direct, proxy):
    service, pipeline_id = pipelines
    index = f"{prefix}-docs"
    await direct.indices.create(index=index, settings={"number_of_replicas": 0})
    assert await service.plan(index) is None
    proxy.hold("/_settings")
    before = asyncio.create_task(service.plan(index))  # reads the old settings, answer held
    await asyncio.wait_for(proxy.held.wait(), 30)
    await direct.indices.put_settings(index=index, settings={"index.default_pipeline": pipeline_id})
    service.invalidate_index(index)
    service.settings_ttl_s = 3600  # from now on a cached answer would be served as it is
    after = asyncio.create_task(service.plan(index))
    await proxy.wait_for_count("GET", f"/{index}/_settings", 2)  # the later write reads the settings itself
    proxy.release()
    assert await before is None
    assert (await after).pipeline == pipeline_id
    assert (await service.plan(index)).pipeline == pipeline_id


async def test_index_pipelines_with_elasticsearch_down_are_503_for_every_write(pipelines, prefix, direct, proxy):
    service, pipeline_id = pipelines
    index = f"{prefix}-docs"
    await direct.indices.create(index=index, settings={"number_of_replicas": 0, "default_pipeline": pipeline_id})
    assert (await service.plan(index)).pipeline == pipeline_id
    await proxy.stop_listening()
    results = await asyncio.gather(*(service.plan(index) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, EsError) and r.status == 503 for r in results), results
    await proxy.start()
    assert (await service.plan(index)).pipeline == pipeline_id
