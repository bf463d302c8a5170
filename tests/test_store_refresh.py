"""Cached reads of endpoint definitions and semantic_text metadata under concurrency.

Once a cached entry has expired, however many requests want it at the same moment, the
sidecar asks Elasticsearch once; a write of this process is never undone by an answer that
was already on its way; other sidecars' writes are seen once the entry expires; and when
Elasticsearch is down every waiting request fails as before. Requests to Elasticsearch are
counted at a small loopback HTTP proxy in front of it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from elasticsearch import AsyncElasticsearch

from sidecar.endpoints.secrets import SecretBox
from sidecar.endpoints.store import EndpointStore
from sidecar.errors import EsError
from sidecar.protocol.service import Endpoint, TaskType
from sidecar.semantic.layout import META_KEY
from sidecar.semantic.metadata import SemanticIndices

pytestmark = pytest.mark.es

CONCURRENT = 200


@pytest.fixture
async def stores(proxy, direct) -> AsyncIterator[tuple[EndpointStore, EndpointStore]]:
    """Two endpoint stores on one Elasticsearch, as two sidecar processes have: the first
    talks through the counting proxy. Both re-check their cache on every use (TTL 0)."""
    prefix = f".sidecar-test-inference-{uuid.uuid4().hex[:8]}"
    through_proxy = AsyncElasticsearch(proxy.url, max_retries=0)
    own = EndpointStore(through_proxy, SecretBox(None), prefix=prefix, ttl_s=0)
    other = EndpointStore(direct, SecretBox(None), prefix=prefix, ttl_s=0)
    yield own, other
    await through_proxy.close()
    await direct.indices.delete(index=f"{prefix}*", expand_wildcards="all", ignore_unavailable=True)


def _endpoint(inference_id: str, model: str = "m1") -> Endpoint:
    return Endpoint(inference_id, TaskType.TEXT_EMBEDDING, "elasticsearch", {"model_id": model})


async def _get_many(store: EndpointStore, inference_id: str) -> list[Endpoint | None]:
    return await asyncio.gather(*(store.get(inference_id) for _ in range(CONCURRENT)))


async def test_expired_definition_is_rechecked_once_for_many_requests(stores, proxy):
    own, _ = stores
    await own.create(_endpoint("stampede"))
    doc_path = f"{own.index}/_doc/stampede"

    proxy.seen.clear()
    first = await _get_many(own, "stampede")  # nothing cached yet: one full read
    assert all(e is not None and e.service_settings == {"model_id": "m1"} for e in first)
    assert proxy.count("GET", doc_path) == 1

    for _ in range(2):  # cached but expired: one re-check per wave of requests
        proxy.seen.clear()
        again = await _get_many(own, "stampede")
        assert all(e is not None and e.inference_id == "stampede" for e in again)
        assert proxy.count("GET", doc_path) == 1


async def test_unknown_endpoint_is_looked_up_once_for_many_requests(stores, proxy):
    own, _ = stores
    await own.ensure_indices()
    proxy.seen.clear()
    assert await _get_many(own, "missing") == [None] * CONCURRENT
    assert proxy.count("GET", f"{own.index}/_doc/missing") == 1


async def test_other_process_changes_are_seen_after_expiry(stores):
    own, other = stores
    await own.create(_endpoint("shared"))
    assert (await other.get("shared")).service_settings == {"model_id": "m1"}
    await own.replace(_endpoint("shared", "m2"), secrets_changed=False)
    assert {e.service_settings["model_id"] for e in await _get_many(other, "shared")} == {"m2"}
    assert await own.delete("shared")
    assert await _get_many(other, "shared") == [None] * CONCURRENT


async def test_a_delete_is_not_undone_by_a_recheck_already_on_its_way(stores, proxy):
    own, _ = stores
    await own.create(_endpoint("racing"))
    assert await own.get("racing") is not None
    doc_path = f"{own.index}/_doc/racing"
    proxy.hold(doc_path)
    before = asyncio.create_task(own.get("racing"))  # its re-check saw the endpoint, answer held
    await asyncio.wait_for(proxy.held.wait(), 30)
    assert await own.delete("racing")
    own.ttl_s = 3600  # from now on a cached entry would be served as it is
    after = asyncio.create_task(own.get("racing"))
    await proxy.wait_for_count("GET", doc_path, 2)  # the later request asks Elasticsearch itself
    proxy.release()
    assert (await before) is not None
    assert (await after) is None
    assert await own.get("racing") is None


async def test_elasticsearch_down_fails_every_waiting_request_then_recovers(stores, proxy):
    own, _ = stores
    await own.create(_endpoint("outage"))
    assert await own.get("outage") is not None
    await proxy.stop_listening()
    results = await asyncio.gather(*(own.get("outage") for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, EsError) and r.status == 503 for r in results), results
    assert all("Elasticsearch is unavailable" in r.reason for r in results)
    await proxy.start()
    assert (await own.get("outage")).inference_id == "outage"


# -- semantic_text metadata of indices ----------------------------------------------------------


def _meta(inference_id: str) -> dict:
    return {META_KEY: {"semantic_text": {"content": {"type": "semantic_text", "inference_id": inference_id}}}}


@pytest.fixture
async def semantic_index(direct) -> AsyncIterator[str]:
    name = f"test-metadata-{uuid.uuid4().hex[:8]}"
    await direct.indices.create(index=name, settings={"number_of_replicas": 0},
                                mappings={"_meta": _meta("first")})
    yield name
    await direct.indices.delete(index=name, ignore_unavailable=True)


@pytest.fixture
async def semantic(proxy) -> AsyncIterator[SemanticIndices]:
    client = AsyncElasticsearch(proxy.url, max_retries=0)
    yield SemanticIndices(client, ttl_s=0)
    await client.close()


async def test_index_metadata_is_read_once_for_many_requests(semantic, semantic_index, proxy):
    for _ in range(2):
        proxy.seen.clear()
        found = await asyncio.gather(*(semantic.resolve(semantic_index) for _ in range(CONCURRENT)))
        assert all(f[semantic_index].fields["content"].inference_id == "first" for f in found)
        assert proxy.count("GET", "/_mapping") == 1

        proxy.seen.clear()
        targets = await asyncio.gather(*(semantic.for_write(semantic_index) for _ in range(CONCURRENT)))
        assert {t.index for t in targets} == {semantic_index}
        assert proxy.count("GET", "/_mapping") == 1

        proxy.seen.clear()
        assert all(await asyncio.gather(*(semantic.any_semantic() for _ in range(CONCURRENT))))
        assert proxy.count("GET", "/_mapping") == 1


async def test_invalidate_is_not_undone_by_a_read_already_on_its_way(semantic, semantic_index, proxy, direct):
    assert semantic_index in await semantic.resolve(semantic_index)
    proxy.hold("/_mapping")
    before = asyncio.create_task(semantic.resolve(semantic_index))  # reads the old mapping, answer held
    await asyncio.wait_for(proxy.held.wait(), 30)
    await direct.indices.put_mapping(index=semantic_index, meta=_meta("second"))
    semantic.invalidate()
    semantic.ttl_s = 3600
    after = asyncio.create_task(semantic.resolve(semantic_index))
    await proxy.wait_for_count("GET", "/_mapping", 2)
    proxy.release()
    assert (await before)[semantic_index].fields["content"].inference_id == "first"
    assert (await after)[semantic_index].fields["content"].inference_id == "second"
    assert (await semantic.resolve(semantic_index))[semantic_index].fields["content"].inference_id == "second"


async def test_index_metadata_with_elasticsearch_down_is_503_for_every_request(semantic, semantic_index, proxy):
    await proxy.stop_listening()
    results = await asyncio.gather(*(semantic.resolve(semantic_index) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, EsError) and r.status == 503 for r in results), results
    await proxy.start()
    assert semantic_index in await semantic.resolve(semantic_index)
