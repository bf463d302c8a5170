"""Bad input never produces a 5xx, a traceback or stored garbage: property-based fuzzing of
every endpoint the sidecar intercepts, against the real sidecar and Elasticsearch."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import http_util as http
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.es

CASES = {"count": 0}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                         st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)), max_leaves=12)
known_keys = st.sampled_from(["service", "service_settings", "task_settings", "chunking_settings", "input",
                              "query", "task_type", "model_id", "num_allocations", "num_threads", "api_key",
                              "strategy", "max_chunk_size", "overlap", "adaptive_allocations", "top_n"])
bodies = st.one_of(
    json_values,
    st.dictionaries(known_keys, json_values, max_size=5),
    st.fixed_dictionaries({"service": st.sampled_from(["elasticsearch", "openai", "cohere", "nope", ""]),
                           "service_settings": st.dictionaries(known_keys, json_values, max_size=5)},
                          optional={"task_settings": json_values, "chunking_settings": json_values}),
)
raw_bodies = st.one_of(
    st.binary(max_size=200),                                       # invalid UTF-8, garbage
    st.just(b"[" * 5000 + b"]" * 5000),                            # deep nesting
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    bodies.map(lambda b: json.dumps(b).encode()),
)
ids = st.one_of(st.sampled_from(["ok-id", "Bad_ID", "-x", "x-", "a" * 300, "_all", "*", "%2F", "ü"]),
                st.text(alphabet="abcXYZ019-_.", min_size=1, max_size=20))
task_types = st.sampled_from(["text_embedding", "sparse_embedding", "rerank", "completion", "chat_completion", "nope"])


def _check(status: int, raw: bytes, what: str) -> None:
    CASES["count"] += 1
    assert status < 500 or status == 503, f"{what} → {status}: {raw[:300]!r}"
    assert b"Traceback" not in raw and b'File "' not in raw, what
    if status >= 400 and raw:
        body = json.loads(raw)
        assert isinstance(body.get("error"), dict) and body.get("status") == status, (what, body)
        assert body["error"]["root_cause"], what


def _send(method: str, url: str, raw: bytes, content_type: str = "application/json") -> None:
    status, _, answer = http.request(method, url, raw, headers={"Content-Type": content_type}, timeout=60)
    _check(status, answer, f"{method} {url} {raw[:120]!r}")


@pytest.fixture(scope="module")
def prefix():
    return f"fz{uuid.uuid4().hex[:6]}"


@SETTINGS
@given(task_type=task_types, body=raw_bodies)
def test_fuzz_create(sidecar_url, prefix, task_type, body):
    _send("PUT", f"{sidecar_url}/_inference/{task_type}/{prefix}-create", body)


@SETTINGS
@given(inference_id=ids, task_type=st.one_of(st.none(), task_types), body=raw_bodies)
def test_fuzz_perform_update_delete(sidecar_url, inference_id, task_type, body):
    inference_id = quote(inference_id, safe="")
    path = f"/_inference/{task_type}/{inference_id}" if task_type else f"/_inference/{inference_id}"
    _send("POST", sidecar_url + path, body)
    _send("PUT", sidecar_url + path + "/_update", body)
    _send("GET", sidecar_url + path, b"")
    _send("DELETE", sidecar_url + path + "?dry_run=true", b"")


@SETTINGS
@given(body=raw_bodies, mapping=json_values)
def test_fuzz_index_creation_and_mappings(sidecar_url, prefix, body, mapping):
    _send("PUT", f"{sidecar_url}/{prefix}-idx", body)
    semantic = {"mappings": {"properties": {"f": {"type": "semantic_text", "inference_id": mapping}}}}
    _send("PUT", f"{sidecar_url}/{prefix}-idx2", json.dumps(semantic).encode())
    http.request("DELETE", f"{sidecar_url}/{prefix}-idx*")


@SETTINGS
@given(lines=st.lists(st.one_of(raw_bodies, st.just(b'{"index":{"_index":"x"}}'),
                                st.just(b'{"update":{"_index":"x","_id":"1"}}')), max_size=8))
def test_fuzz_bulk_ndjson(sidecar_url, lines):
    _send("POST", f"{sidecar_url}/_bulk", b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n",
          "application/x-ndjson")


def test_after_fuzzing_nothing_stored_and_healthy(sidecar_url, prefix):
    status, body = http.json_request("GET", f"{sidecar_url}/_inference/_all")
    assert status == 200
    assert not [e for e in body["endpoints"] if e["inference_id"].startswith(prefix)]
    assert http.json_request("GET", f"{sidecar_url}/_sidecar/health")[0] == 200
    print(f"fuzz cases run: {CASES['count']}")
    assert CASES["count"] >= 400
