"""``_update_by_query`` on indices with semantic_text fields.

The test nodes have no reindex module, so there the sidecar must answer as the node does. To
check what it does where the node has the module, a loopback proxy in front of the real node
answers the one capability probe (an update-by-query of an index that does not exist) as a node
with the module answers it; every document read and written is the real node's."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_util as http
import pytest
import semantic_docs as sd

from sidecar.es.capabilities import Capabilities
from sidecar.testing.process import SidecarProcess

pytestmark = pytest.mark.es
ROOT = "_sidecar_inference"
EMPTY_UPDATE_BY_QUERY = {"took": 0, "timed_out": False, "total": 0, "updated": 0, "deleted": 0, "batches": 0,
                         "version_conflicts": 0, "noops": 0, "retries": {"bulk": 0, "search": 0},
                         "throttled_millis": 0, "requests_per_second": -1.0, "throttled_until_millis": 0,
                         "failures": []}


def test_without_the_reindex_module_the_node_answers(sidecar_url, es_url):
    endpoint = sd.create_endpoint(sidecar_url, "sparse_embedding", sd.TINY_SPARSE, "stu-sparse")
    index = sd.create_index(sidecar_url, sd.uid("stu"), {"body": {"type": "semantic_text", "inference_id": endpoint}})
    try:
        direct = http.request("POST", f"{es_url}/{index}/_update_by_query", {"query": {"match_all": {}}})
        through = http.request("POST", f"{sidecar_url}/{index}/_update_by_query", {"query": {"match_all": {}}})
        assert direct[0] != 200  # the test nodes have no reindex module
        assert (through[0], json.loads(through[2])) == (direct[0], json.loads(direct[2]))
    finally:
        sd.delete_index(sidecar_url, index)
        sd.delete_endpoint(sidecar_url, endpoint)


class _WithReindexModule(BaseHTTPRequestHandler):
    upstream = ""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else None
        if self.command == "POST" and self.path.startswith(f"/{Capabilities.PROBE_INDEX}/_update_by_query"):
            return self._send(200, json.dumps(EMPTY_UPDATE_BY_QUERY).encode(), {"Content-Type": "application/json",
                                                                               "X-elastic-product": "Elasticsearch"})
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        req = urllib.request.Request(self.upstream + self.path, data=data, method=self.command, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                self._send(resp.status, resp.read(), dict(resp.headers.items()))
        except urllib.error.HTTPError as err:
            self._send(err.code, err.read(), dict(err.headers.items()))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def with_module(es_url, sidecar_env, tmp_path_factory):
    handler = type("Handler", (_WithReindexModule,), {"upstream": es_url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proc = SidecarProcess(f"http://127.0.0.1:{server.server_port}", sidecar_env,
                          tmp_path_factory.mktemp("ubq") / "sidecar.log").start()
    yield proc.url
    proc.stop()
    server.shutdown()


def test_update_by_query_fills_new_semantic_text_fields(with_module, es_url):
    url = with_module
    endpoint = sd.create_endpoint(url, "sparse_embedding", sd.TINY_SPARSE, "stu-sparse")
    index = sd.uid("stu")
    status, body = http.json_request("PUT", f"{url}/{index}", {
        "settings": {"number_of_replicas": 0},
        "mappings": {"dynamic": False, "properties": {"title": {"type": "keyword"}}}})
    assert status == 200, body
    try:
        sd.index_docs(url, index, {"1": {"title": "a", "body": "the droids you are looking for"},
                                   "2": {"title": "b", "body": ["inference test", "another inference test"]},
                                   "3": {"title": "c"}})
        status, body = http.json_request("PUT", f"{url}/{index}/_mapping", {"properties": {
            "body": {"type": "semantic_text", "inference_id": endpoint}}})
        assert status == 200, body
        assert ROOT not in http.stored_source(es_url, index, "1")

        status, body = http.json_request("POST", f"{url}/{index}/_update_by_query?refresh=true", {})
        assert status == 200, body
        assert body["total"] == 3 and body["updated"] == 3 and body["failures"] == [] and "created" not in body
        one, two = http.stored_source(es_url, index, "1"), http.stored_source(es_url, index, "2")
        assert one["body"] == "the droids you are looking for" and one["title"] == "a"
        assert [(c["start_offset"], c["end_offset"]) for c in two[ROOT]["body"]["chunks"]] == [(0, 14), (15, 37)]
        assert ROOT not in http.stored_source(es_url, index, "3")
        status, found = sd.search(url, index, {"query": {"semantic": {"field": "body", "query": "droids"}}})
        assert status == 200 and set(sd.ids(found)) == {"1", "2"}, found

        # A query restricts what is rewritten; semantic queries in it are rewritten too.
        status, body = http.json_request("POST", f"{url}/{index}/_update_by_query", {
            "query": {"semantic": {"field": "body", "query": "droids"}}, "max_docs": 1})
        assert status == 200 and body["total"] == 1 and body["updated"] == 1, body
    finally:
        sd.delete_index(url, index)
        sd.delete_endpoint(url, endpoint)
