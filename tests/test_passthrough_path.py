"""The pass-through path's bookkeeping: the fence's memory of paths that passed (a refused path
is refused every time, and a path that passed still has its body checked), and the HTTP
request metrics counted without prometheus_client's per-update locks."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.errors import EsError
from sidecar.metrics import PROXY_ROUTE, HttpStats
from sidecar.security.fence import Fence
from sidecar.security.indices import IndexFence


def _stream(raw: bytes) -> StreamReader:
    """A request body as aiohttp's server hands it to handlers (flow control is the
    connection's, absent here)."""
    reader = StreamReader(BaseProtocol(asyncio.get_running_loop()), 2**16, loop=asyncio.get_running_loop())
    reader.feed_data(raw)
    reader.feed_eof()
    return reader


def _request(method: str, path: str, body: bytes | None = None):
    headers = {"Content-Type": "application/json"}
    if body is not None:
        headers["Content-Length"] = str(len(body))
    return make_mocked_request(method, path, headers=headers, payload=_stream(body) if body is not None else None)


@pytest.fixture
def fence() -> Fence:
    return Fence(IndexFence.for_prefix(".sidecar-inference"))


async def test_a_refused_path_is_refused_every_time(fence):
    for _ in range(3):
        with pytest.raises(EsError) as err:
            await fence.check(_request("GET", "/.sidecar-inference/_search"))
        assert err.value.status == 403
    # Percent-encoded, the same index is still the sidecar's.
    with pytest.raises(EsError):
        await fence.check(_request("GET", "/%2Esidecar-inference/_search"))


async def test_a_path_that_passed_still_has_its_body_checked(fence):
    ok = b'{"query": {"match_all": {}}}'
    hidden = b'{"query": {"terms": {"f": {"index": ".sidecar-inference", "id": "1", "path": "f"}}}}'
    assert (await fence.check(_request("POST", "/logs/_search", ok))).error is None
    with pytest.raises(EsError) as err:
        await fence.check(_request("POST", "/logs/_search", hidden))
    assert err.value.status == 403
    # The same path with another query string is checked on its own.
    with pytest.raises(EsError):
        await fence.check(_request("POST", "/logs/_search?index=.sidecar-inference", ok))


def _families(stats: HttpStats) -> dict[str, dict[tuple, float]]:
    registry = CollectorRegistry()
    registry.register(stats)
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_http_stats_export_counts_histogram_and_in_flight():
    stats = HttpStats(buckets=(0.01, 0.1, 1.0))
    for seconds in (0.005, 0.01, 0.05, 2.0):
        stats.observe("proxy", "GET", 200, seconds)
    stats.observe("proxy", "GET", 404, 0.2)
    stats.in_flight = 3
    got = _families(stats)
    requests = got["sidecar_http_requests_total"]
    assert requests[(("method", "GET"), ("route", "proxy"), ("status", "200"))] == 4
    assert requests[(("method", "GET"), ("route", "proxy"), ("status", "404"))] == 1
    buckets = {dict(k)["le"]: v for k, v in got["sidecar_http_request_duration_seconds_bucket"].items()}
    # Cumulative, with a bound counting the values equal to it.
    assert buckets == {"0.01": 2, "0.1": 3, "1.0": 4, "+Inf": 5}
    assert got["sidecar_http_request_duration_seconds_count"][(("method", "GET"), ("route", "proxy"))] == 5
    assert got["sidecar_http_request_duration_seconds_sum"][(("method", "GET"), ("route", "proxy"))] == \
        pytest.approx(2.265)
    assert got["sidecar_http_requests_in_flight"][()] == 3


@pytest.mark.parametrize("body", [
    b'{"query": {"terms": {"f": {"index": ".SIDECAR-Inference", "id": "1", "path": "f"}}}}',
    b'{"query": {"terms": {"f": {"index": "\\u002esidecar-inference", "id": "1", "path": "f"}}}}',
    b'{"query": {"terms": {"f": {"index": ".sidecar-tas*", "id": "1", "path": "f"}}}}',
    b'{"query": {"terms": {"f": {"index": "_all", "expand_wildcards": "all", "id": "1", "path": "f"}}}}',
])
async def test_index_names_in_a_body_are_found_whatever_their_spelling(fence, body):
    with pytest.raises(EsError) as err:
        await fence.check(_request("POST", "/logs/_search", body))
    assert err.value.status == 403


async def test_a_checked_body_is_what_the_handler_reads(fence):
    body = b'{"query": {"match": {"title": "sidecar"}}}'
    request = _request("POST", "/logs/_search", body)
    assert (await fence.check(request)).error is None
    # Read once by the fence; the handler and the pass-through get the same bytes.
    assert await request.read() == body
    assert request.content.at_eof()


# ---- route resolution -------------------------------------------------------------------------

ROUTED = [
    ("POST", "/logs/_search", "/{index}/_search"),
    ("GET", "/logs,metrics/_search", "/{index}/_search"),
    ("POST", "/logs/_doc", "/{index}/_doc"),
    ("PUT", "/logs/_doc/1", "/{index}/_doc/{id}"),
    ("GET", "/logs/_doc/1", "/{index}/_doc/{id}"),
    ("PUT", "/logs/_create/1", "/{index}/_create/{id}"),
    ("POST", "/logs/_update/1", "/{index}/_update/{id}"),
    ("POST", "/logs/_bulk", "/{index}/_bulk"),
    ("PUT", "/logs", "/{index}"),
    ("GET", "/logs", "/{index}"),
    ("GET", "/logs/_mapping", "/{index}/_mapping"),
    ("POST", "/logs/_update_by_query", "/{index}/_update_by_query"),
    ("POST", "/_search", "/_search"),
    ("POST", "/_all/_search", "/_all/_search"),
    ("POST", "/_bulk", "/_bulk"),
    ("POST", "/_inference/my-endpoint", "/_inference/{inference_id}"),
    ("PUT", "/_inference/text_embedding/e/_update", "/_inference/{task_type}/{inference_id}/_update"),
    ("GET", "/", "/"),
    # Passed through to Elasticsearch.
    ("GET", "/_cat/indices", "proxy"),
    ("POST", "/logs/_refresh", "proxy"),
    ("DELETE", "/logs", "proxy"),
    ("DELETE", "/logs/_doc/1", "proxy"),
    ("GET", "/logs/_doc", "proxy"),
    ("HEAD", "/logs", "proxy"),
    ("GET", "/_logs/_search", "proxy"),  # not an index name: Elasticsearch answers it
    ("GET", "/logs/", "proxy"),
    ("POST", "/logs/_search/extra", "proxy"),
]


@pytest.mark.parametrize(("method", "path", "label"), ROUTED)
async def test_each_request_finds_its_route(method, path, label):
    from aiohttp import web

    from sidecar.api import routes

    app = web.Application()
    routes.register(app.router)
    app.freeze()
    match = await app.router.resolve(make_mocked_request(method, path, app=app))
    route = match.route
    assert route is not None and route.method in (method, "*")
    canonical = route.resource.canonical
    assert (PROXY_ROUTE if canonical == "/{tail}" else canonical) == label
    if label == PROXY_ROUTE:
        assert route.handler.__name__ == "proxy_handler"


def test_every_route_of_the_table_is_reachable():
    """Each row of the table resolves to itself for a path made from its template (no row is
    hidden behind another one)."""
    import re

    from aiohttp import web

    from sidecar.api import routes

    app = web.Application()
    routes.register(app.router)
    app.freeze()

    async def check() -> None:
        for methods, path, handler in routes.ROUTES:
            concrete = re.sub(r"\{[^}:]+(:[^}]*\})?\}?", "x1", path.replace(routes.INDEX, "logs"))
            for method in methods:
                match = await app.router.resolve(make_mocked_request(method, concrete, app=app))
                assert match.route.handler.__name__ == handler.__name__, (method, path, concrete)

    asyncio.run(check())
