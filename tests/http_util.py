"""A minimal synchronous HTTP client for tests (status, headers and body, any method)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def request(method: str, url: str, body: Any = None, *, headers: dict[str, str] | None = None,
            timeout: float = 120) -> tuple[int, dict[str, str], bytes]:
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def json_request(method: str, url: str, body: Any = None, **kw) -> tuple[int, Any]:
    status, _, raw = request(method, url, body, **kw)
    return status, (json.loads(raw) if raw else None)


_VERSIONS: dict[str, tuple[int, ...]] = {}


def node_version(es_url: str) -> tuple[int, ...]:
    """The version of the node at ``es_url`` (asked once per URL)."""
    if es_url not in _VERSIONS:
        _, nodes = json_request("GET", f"{es_url}/_nodes/_local?filter_path=nodes.*.version")
        number = next(iter(nodes["nodes"].values()))["version"]
        _VERSIONS[es_url] = tuple(int(p) for p in number.split("-")[0].split("."))
    return _VERSIONS[es_url]


def stored_source(es_url: str, index: str, doc_id: str) -> dict[str, Any]:
    """A document's ``_source`` as the node stores it, read straight from the node: with the
    chunk vectors, which nodes from 9.1 on keep out of ``_source`` unless asked."""
    query = "?_source_exclude_vectors=false" if node_version(es_url) >= (9, 1) else ""
    status, body = json_request("GET", f"{es_url}/{index}/_doc/{doc_id}{query}")
    assert status == 200, body
    return body["_source"]
