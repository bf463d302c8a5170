"""Shared fixtures. ``es_url``: the Elasticsearch the tests run against."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import es_node
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Fixtures that reach Elasticsearch (directly or through a sidecar process in front of it).
_ES_FIXTURES = {"es_url", "sidecar", "sidecar_url", "proxy", "direct"}


def pytest_collection_modifyitems(config, items) -> None:
    """``-m "not es"`` must run exactly the tests that need no Elasticsearch and no subprocess:
    a test that asks for an Elasticsearch fixture without the ``es`` marker is an error."""
    unmarked = [f"{item.nodeid} uses {sorted(used)}" for item in items
                if (used := _ES_FIXTURES.intersection(getattr(item, "fixturenames", ())))
                and item.get_closest_marker("es") is None]
    if unmarked:
        raise pytest.UsageError("not marked `es`:\n  " + "\n  ".join(unmarked))


@pytest.fixture(autouse=True)
def _in_process_unless_marked_es(request, monkeypatch) -> None:
    """A test without the ``es`` marker may not start a Python process or one of the project's
    scripts (``-m "not es"`` promises in-process tests). Libraries' own helper commands (ctypes
    asking ``ldconfig`` where a library is) stay allowed."""
    if request.node.get_closest_marker("es") is not None:
        return
    execute_child = subprocess.Popen._execute_child

    def guarded(self, args, executable, *rest, **kwargs):
        argv = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
        program = os.fsdecode(executable or argv[0])
        if "python" in os.path.basename(program) or os.path.abspath(program).startswith(_ROOT):
            raise AssertionError(f"{request.node.nodeid} starts {program}: mark it `es`")
        return execute_child(self, args, executable, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", guarded)


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
