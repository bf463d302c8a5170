"""The access log: one JSON line per request the sidecar answered or changed itself. Requests
handed to Elasticsearch untouched are Elasticsearch's answers and are logged only with
``--access-log all``; ``--access-log off`` logs none."""

from __future__ import annotations

import json
import time
import uuid

import http_util as http
import pytest
from sidecar_fixtures import SidecarProcess

pytestmark = pytest.mark.es


def _requests_logged(path, expected_last: str, timeout: float = 5.0) -> list[dict]:
    """The access-log lines, once the line for ``expected_last`` (or nothing, after the
    timeout) is there: lines are written out in batches."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
        logged = [line for line in lines if line.get("message") == "request"]
        if any(line["url.path"] == expected_last for line in logged) or time.monotonic() > deadline:
            return logged
        time.sleep(0.05)


@pytest.mark.parametrize("mode", [None, "all", "off"])
def test_access_log_modes(es_url, sidecar_env, tmp_path, mode):
    index = f"access-{uuid.uuid4().hex[:8]}"
    assert http.json_request("PUT", f"{es_url}/{index}", {"mappings": {"properties": {"t": {"type": "text"}}}})[0] == 200
    env = dict(sidecar_env) if mode is None else {**sidecar_env, "SIDECAR_ACCESS_LOG": mode}
    proc = SidecarProcess(es_url, env, tmp_path / "sidecar.log").start()
    try:
        # Handed to Elasticsearch untouched (its answers, errors included).
        assert http.request("GET", f"{proc.url}/_cat/health")[0] == 200
        assert http.json_request("POST", f"{proc.url}/{index}/_search", {"query": {"match": {"t": "x"}}})[0] == 200
        assert http.json_request("GET", f"{proc.url}/no-such-index-{index}/_search")[0] == 404
        # Answered by the sidecar itself: its API, and the fence's refusal.
        assert http.json_request("GET", f"{proc.url}/_inference/_all")[0] == 200
        assert http.json_request("GET", f"{proc.url}/.sidecar-inference/_search")[0] == 403
        logged = _requests_logged(proc.log_path, "/.sidecar-inference/_search", timeout=2 if mode == "off" else 10)
    finally:
        proc.stop()
        http.request("DELETE", f"{es_url}/{index}")
    paths = [(line["http.request.method"], line["url.path"], line["http.response.status_code"]) for line in logged
             if line["url.path"] != "/_sidecar/live"]  # the start-up probe
    own = [("GET", "/_inference/_all", 200), ("GET", "/.sidecar-inference/_search", 403)]
    passed = [("GET", "/_cat/health", 200), ("POST", f"/{index}/_search", 200),
              ("GET", f"/no-such-index-{index}/_search", 404)]
    if mode == "off":
        assert paths == []
    elif mode == "all":
        assert sorted(paths) == sorted(own + passed)
    else:  # the default
        assert sorted(paths) == sorted(own)
    for line in logged:  # the fields a line carries, and nothing of the request's content
        assert set(line) == {"@timestamp", "log.level", "log.logger", "message", "http.request.method", "url.path",
                             "http.response.status_code", "event.duration_ms", "client.address"}
