"""Shared fixtures. ``es_url``: the Elasticsearch the tests run against."""

from __future__ import annotations

import os
from collections.abc import Iterator

import es_node
import pytest


@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    """``$ES_URL`` if set (scripts/test sets it); otherwise a node started with ``scripts/es start``
    on ``$ES_PORT`` (default 9200), stopped at the end only if this session started it."""
    url = os.environ.get("ES_URL")
    if url:
        yield url.rstrip("/")
        return
    node = es_node.ensure_node(int(os.environ.get("ES_PORT", "9200")))
    try:
        yield node.url
    finally:
        node.stop()


# ---- sidecar fixtures (the sidecar process in front of es_url) are registered below ----
pytest_plugins = ["sidecar_fixtures"]


@pytest.fixture
async def proxy(es_url):
    """A :class:`counting_proxy.CountingProxy` in front of the test node."""
    from counting_proxy import CountingProxy

    p = CountingProxy(es_url)
    await p.start()
    yield p
    await p.close()


@pytest.fixture
async def direct(es_url):
    """An async Elasticsearch client straight to the test node (not through the sidecar)."""
    from elasticsearch import AsyncElasticsearch

    client = AsyncElasticsearch(es_url)
    yield client
    await client.close()
