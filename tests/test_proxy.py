"""The sidecar is a faithful pass-through for everything it does not handle itself."""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid

import aiohttp
import http_util as http
import pytest
from elasticsearch import Elasticsearch, helpers

pytestmark = pytest.mark.es

VOLATILE = {"took"}


def _strip(body):
    if isinstance(body, dict):
        return {k: _strip(v) for k, v in body.items() if k not in VOLATILE}
    if isinstance(body, list):
        return [_strip(v) for v in body]
    return body


@pytest.fixture
def index(es_url):
    name = f"proxy-{uuid.uuid4().hex[:8]}"
    status, body = http.json_request(
        "PUT", f"{es_url}/{name}", {"settings": {"number_of_replicas": 0, "number_of_shards": 1}}
    )
    assert status == 200, body
    yield name
    http.request("DELETE", f"{es_url}/{name}")


def test_crud_and_search_match_direct_elasticsearch(es_url, sidecar_url, index):
    status, created = http.json_request("PUT", f"{sidecar_url}/{index}/_doc/1?refresh=true", {"title": "hello"})
    assert status == 201 and created["result"] == "created"

    for path in (f"/{index}/_doc/1", f"/{index}/_doc/missing", "/no-such-index/_doc/1"):
        direct = http.json_request("GET", es_url + path)
        via = http.json_request("GET", sidecar_url + path)
        assert via == direct

    query = {"query": {"match": {"title": "hello"}}}
    direct = http.json_request("POST", f"{es_url}/{index}/_search", query)
    via = http.json_request("POST", f"{sidecar_url}/{index}/_search", query)
    assert via[0] == direct[0] == 200
    assert _strip(via[1]) == _strip(direct[1])
    assert via[1]["hits"]["total"]["value"] == 1

    bad = {"query": {"no_such_query": {}}}
    direct = http.json_request("POST", f"{es_url}/{index}/_search", bad)
    via = http.json_request("POST", f"{sidecar_url}/{index}/_search", bad)
    assert via == direct and via[0] == 400

    status, deleted = http.json_request("DELETE", f"{sidecar_url}/{index}/_doc/1")
    assert status == 200 and deleted["result"] == "deleted"
    assert http.json_request("GET", f"{sidecar_url}/{index}/_doc/1") == http.json_request(
        "GET", f"{es_url}/{index}/_doc/1"
    )


def test_head_requests(sidecar_url, index):
    status, headers, body = http.request("HEAD", f"{sidecar_url}/{index}")
    assert (status, body) == (200, b"")
    status, _, body = http.request("HEAD", f"{sidecar_url}/no-such-index-{uuid.uuid4().hex}")
    assert (status, body) == (404, b"")
    status, headers, body = http.request("HEAD", f"{sidecar_url}/")
    assert status == 200 and body == b""
    assert headers.get("X-elastic-product") == "Elasticsearch"


def test_headers_pass_through(sidecar_url, index):
    status, headers, _ = http.request(
        "GET", f"{sidecar_url}/{index}/_search", headers={"X-Opaque-Id": "trace-42"}
    )
    assert status == 200
    assert headers.get("X-Opaque-Id") == "trace-42"
    assert headers.get("X-elastic-product") == "Elasticsearch"


def test_root_answers_like_elasticsearch(es_url, sidecar_url):
    status, headers, raw = http.request("GET", f"{sidecar_url}/")
    assert status == 200
    assert headers.get("X-elastic-product") == "Elasticsearch"
    body = json.loads(raw)
    _, nodes = http.json_request("GET", f"{es_url}/_nodes/_local")
    node = next(iter(nodes["nodes"].values()))
    assert body["version"]["number"] == node["version"]
    assert body["name"] == node["name"]
    assert body["cluster_name"] == nodes["cluster_name"]
    assert body["tagline"] == "You Know, for Search"


def test_official_client_works_unchanged(sidecar_url, es_url, index):
    client = Elasticsearch(sidecar_url)
    info = client.info()
    assert info["version"]["number"] == ".".join(map(str, http.node_version(es_url)))
    assert client.ping()
    client.index(index=index, id="a", document={"title": "client doc"}, refresh=True)
    assert client.get(index=index, id="a")["_source"] == {"title": "client doc"}
    ok, errors = helpers.bulk(
        client, ({"_index": index, "_id": str(i), "title": f"doc {i}"} for i in range(500)), refresh=True
    )
    assert ok == 500 and not errors
    assert client.count(index=index)["count"] == 501
    hits = client.search(index=index, query={"match": {"title": "client"}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["a"]


def test_compressed_requests_and_responses(sidecar_url, index):
    client = Elasticsearch(sidecar_url, http_compress=True)
    client.index(index=index, id="z", document={"title": "zipped"}, refresh=True)
    assert client.search(index=index, query={"match": {"title": "zipped"}})["hits"]["total"]["value"] == 1
    body = gzip.compress(json.dumps({"query": {"match_all": {}}}).encode())
    status, headers, raw = http.request(
        "POST", f"{sidecar_url}/{index}/_search", body,
        headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert status == 200
    if headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    assert json.loads(raw)["hits"]["total"]["value"] == 1


def _rss_peak_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_large_bulk_streams_through_with_bounded_memory(sidecar, sidecar_url, index):
    line = json.dumps({"title": "x" * 10_000, "n": 0}).encode()
    docs = 50 * 1024 * 1024 // (len(line) + 40)

    async def body():
        batch = []
        for i in range(docs):
            batch.append(b'{"index":{"_id":"%d"}}\n' % i + line + b"\n")
            if len(batch) == 2000:
                yield b"".join(batch)
                batch = []
        if batch:
            yield b"".join(batch)

    async def send():
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{sidecar_url}/{index}/_bulk?filter_path=errors,items.*.error",
                data=body(), headers={"Content-Type": "application/x-ndjson"},
                timeout=aiohttp.ClientTimeout(total=600),
            ) as resp:
                return resp.status, await resp.json()

    before = _rss_peak_kb(sidecar.pid)
    status, result = asyncio.run(send())
    after = _rss_peak_kb(sidecar.pid)
    assert status == 200 and result["errors"] is False
    http.request("POST", f"{sidecar_url}/{index}/_refresh")
    _, count = http.json_request("GET", f"{sidecar_url}/{index}/_count")
    assert count["count"] == docs
    # The 50 MB body was streamed, not buffered: the peak RSS grew by far less than its size.
    assert after - before < 30 * 1024, f"peak RSS grew by {(after - before) // 1024} MB"


def test_small_and_large_responses_arrive_whole(es_url, sidecar_url, index):
    docs = "".join(
        json.dumps({"index": {"_id": str(i)}}) + "\n" + json.dumps({"title": f"doc {i}", "pad": "p" * 1000}) + "\n"
        for i in range(300)
    )
    status, _, raw = http.request("POST", f"{es_url}/{index}/_bulk?refresh=true", docs,
                                  headers={"Content-Type": "application/x-ndjson"})
    assert status == 200 and not json.loads(raw)["errors"]
    for size in (1, 300):  # ~0.3 KB and ~330 KB of hits: one piece, then streamed
        query = {"size": size, "sort": [{"_doc": "asc"}], "query": {"match_all": {}}}
        status, headers, via_sidecar = http.request("POST", f"{sidecar_url}/{index}/_search", query)
        _, _, direct = http.request("POST", f"{es_url}/{index}/_search", query)
        assert status == 200
        assert _strip(json.loads(via_sidecar)) == _strip(json.loads(direct))
        assert len(json.loads(via_sidecar)["hits"]["hits"]) == size
        if size == 1:
            assert int(headers["Content-Length"]) == len(via_sidecar)


def test_clients_leaving_mid_response_are_not_errors(sidecar, sidecar_url, index):
    line = json.dumps({"title": "x" * 20_000})
    docs = "".join(json.dumps({"index": {}}) + "\n" + line + "\n" for _ in range(200))
    http.request("POST", f"{sidecar_url}/{index}/_bulk?refresh=true", docs,
                 headers={"Content-Type": "application/x-ndjson"})
    host, port = sidecar_url.rsplit("//", 1)[1].split(":")

    async def leave_early() -> None:
        body = b'{"size": 200}'
        request = (f"POST /{index}/_search HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        await reader.read(1000)
        writer.transport.abort()

    async def many() -> None:
        await asyncio.gather(*(leave_early() for _ in range(40)))

    asyncio.run(many())
    # The sidecar still answers, and said nothing worse than DEBUG about the departed clients.
    assert http.request("GET", f"{sidecar_url}/{index}/_count")[0] == 200
    assert '"log.level":"ERROR"' not in sidecar.log_tail(2000)
