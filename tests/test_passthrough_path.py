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
from sidecar.metrics import HttpStats
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
