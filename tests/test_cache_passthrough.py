"""What plain requests cost Elasticsearch: searches and writes of indices without
semantic_text fields or sidecar pipelines go through the sidecar as one request each once
its caches are warm, however many arrive at once. The sidecar talks to Elasticsearch through
a loopback HTTP proxy that counts the requests."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from counting_proxy import CountingProxy
from elasticsearch import AsyncElasticsearch

from sidecar.api.keys import TRAINED_MODELS
from sidecar.app import build_app
from sidecar.config import Config

pytestmark = pytest.mark.es

CONCURRENT = 64


@pytest.fixture
async def index(es_url) -> AsyncIterator[str]:
    name = f"test-plain-{uuid.uuid4().hex[:8]}"
    async with AsyncElasticsearch(es_url) as direct:
        await direct.indices.create(index=name, settings={"number_of_replicas": 0},
                                    mappings={"properties": {"title": {"type": "text"}}})
        yield name
        await direct.indices.delete(index=name, ignore_unavailable=True)


async def _sidecar(proxy: CountingProxy, ttl_s: float) -> TestServer:
    prefix = f".sidecar-test-{uuid.uuid4().hex[:8]}"
    config = Config(es_url=proxy.url, registry_ttl_s=ttl_s, system_index_prefix=prefix)
    server = TestServer(build_app(config), host="127.0.0.1")
    await server.start_server()
    # Startup work (the restart of recorded trained-model deployments) is not what a request costs.
    await server.app[TRAINED_MODELS].restoring
    proxy.seen.clear()
    return server


@pytest.fixture
async def sidecar(proxy) -> AsyncIterator[str]:
    """A sidecar whose caches do not expire during a test."""
    server = await _sidecar(proxy, 3600)
    yield str(server.make_url("")).rstrip("/")
    await server.close()


def _requests(index: str, n: int) -> list[tuple[str, str, bytes, str]]:
    """``n`` each of the plain requests: (method, path, body, content type)."""
    ndjson = "application/x-ndjson"
    out = []
    for i in range(n):
        doc = orjson.dumps({"title": f"doc {i}"})
        out += [
            ("POST", f"/{index}/_doc", doc, "application/json"),
            ("PUT", f"/{index}/_doc/id-{i}", doc, "application/json"),
            ("POST", f"/{index}/_bulk", orjson.dumps({"index": {}}) + b"\n" + doc + b"\n", ndjson),
            ("POST", "/_bulk", orjson.dumps({"index": {"_index": index}}) + b"\n" + doc + b"\n", ndjson),
            ("POST", f"/{index}/_search", orjson.dumps({"query": {"match": {"title": "doc"}}}), "application/json"),
            ("GET", f"/{index}/_search?q=title:doc", b"", "application/json"),
        ]
    return out


async def _send_all(base: str, requests: list[tuple[str, str, bytes, str]]) -> None:
    async with aiohttp.ClientSession() as session:
        async def one(method: str, path: str, body: bytes, content_type: str) -> None:
            headers = {"Content-Type": content_type} if body else {}
            async with session.request(method, base + path, data=body or None, headers=headers) as resp:
                answer = await resp.json()
                assert resp.status in (200, 201), answer
                assert not answer.get("errors"), answer

        await asyncio.gather(*(one(*r) for r in requests))


def _forwarded(requests: list[tuple[str, str, bytes, str]]) -> Counter:
    return Counter((method, path.split("?")[0]) for method, path, _, _ in requests)


def _seen(proxy: CountingProxy) -> Counter:
    return Counter((method, path) for method, path in proxy.seen)


async def test_plain_requests_cost_one_request_each_once_caches_are_warm(sidecar, index, proxy):
    await _send_all(sidecar, _requests(index, 1))  # fills the caches
    proxy.seen.clear()
    requests = _requests(index, CONCURRENT)
    await _send_all(sidecar, requests)
    assert _seen(proxy) == _forwarded(requests)


async def _extra_on_a_cold_sidecar(proxy: CountingProxy, requests: list[tuple[str, str, bytes, str]]) -> Counter:
    """The requests the sidecar sent beyond the forwarded ones while a fresh sidecar answered
    ``requests``, all at once."""
    server = await _sidecar(proxy, 3600)
    try:
        await _send_all(str(server.make_url("")).rstrip("/"), requests)
    finally:
        await server.close()
    return _seen(proxy) - _forwarded(requests)


async def test_plain_searches_on_a_cold_sidecar_add_one_metadata_read(proxy, index):
    searches = [r for r in _requests(index, CONCURRENT) if r[1].startswith(f"/{index}/_search")]
    assert await _extra_on_a_cold_sidecar(proxy, searches) == Counter({("GET", f"/{index}/_mapping"): 1})


async def test_plain_writes_on_a_cold_sidecar_add_one_read_per_cache(proxy, index):
    writes = [r for r in _requests(index, CONCURRENT) if "/_search" not in r[1]]
    extra = await _extra_on_a_cold_sidecar(proxy, writes)
    assert set(extra.values()) == {1}, extra  # each cached answer read once, whatever asked for it
    assert len(extra) <= 6, extra


async def test_a_burst_of_inference_api_calls_checks_privileges_once(sidecar, proxy):
    """The sidecar's own APIs check the caller's privileges with Elasticsearch; concurrent
    calls of one caller share that check (the node here has security off)."""
    async with aiohttp.ClientSession() as session:
        async def one() -> None:
            async with session.get(f"{sidecar}/_inference/_all") as resp:
                assert resp.status == 200, await resp.text()

        await asyncio.gather(*(one() for _ in range(CONCURRENT)))
    assert proxy.count("POST", "/_security/user/_has_privileges") == 1
