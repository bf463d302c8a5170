"""``GET /`` and ``HEAD /`` exactly as Elasticsearch answers them.

Elasticsearch's own answer is passed through when the node has the handler. The server-only
distribution lacks it (it lives in the ``rest-root`` module), so then the sidecar builds the
same document from ``_nodes/_local`` and the cluster state, asking with the caller's own
credentials so that authentication behaves as it would on Elasticsearch.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from ..errors import EsError
from ..es.upstream import Upstream
from ..proxy import forwarded_request_headers, stream_response
from .keys import UPSTREAM
from .render import json_response

# Lucene version per Elasticsearch minor (the node info API does not report it).
_LUCENE = {
    "8.11": "9.8.0",
    "8.12": "9.9.2",
    "8.13": "9.10.0",
    "8.14": "9.10.0",
    "8.15": "9.11.1",
    "8.16": "9.12.0",
    "8.17": "9.12.0",
    "8.18": "9.12.1",
    "8.19": "9.12.2",
}


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


async def _json(upstream: Upstream, path: str, headers) -> tuple[int, dict]:
    resp = await upstream.request("GET", path, headers=headers)
    try:
        body = await resp.read()
    finally:
        resp.release()
    return resp.status, orjson.loads(body) if body else {}


async def build_root_document(upstream: Upstream, headers) -> tuple[int, dict]:
    (status, nodes), (cstatus, state) = await asyncio.gather(
        _json(upstream, "/_nodes/_local?filter_path=nodes.*.name,nodes.*.version,nodes.*.build_flavor,"
              "nodes.*.build_type,nodes.*.build_hash,cluster_name", headers),
        _json(upstream, "/_cluster/state/metadata?filter_path=metadata.cluster_uuid", headers),
    )
    if status != 200:
        return status, nodes
    node = next(iter(nodes.get("nodes", {}).values()), {})
    version = node.get("version", "")
    major = int(version.split(".")[0]) if version[:1].isdigit() else 8
    doc = {
        "name": node.get("name"),
        "cluster_name": nodes.get("cluster_name"),
        "cluster_uuid": state.get("metadata", {}).get("cluster_uuid", "_na_") if cstatus == 200 else "_na_",
        "version": {
            "number": version,
            "build_flavor": node.get("build_flavor", "default"),
            "build_type": node.get("build_type", "zip"),
            "build_hash": node.get("build_hash"),
            "build_date": None,
            "build_snapshot": version.endswith("-SNAPSHOT"),
            "lucene_version": _LUCENE.get(_minor(version), "unknown"),
            "minimum_wire_compatibility_version": "7.17.0" if major == 8 else f"{major - 1}.19.0",
            "minimum_index_compatibility_version": "7.0.0" if major == 8 else f"{major - 1}.0.0",
        },
        "tagline": "You Know, for Search",
    }
    return 200, doc


async def root_handler(request: web.Request) -> web.StreamResponse:
    upstream: Upstream = request.app[UPSTREAM]
    headers = forwarded_request_headers(request)
    resp = await upstream.request(request.method, request.raw_path, headers=headers)
    try:
        if resp.status < 400 or resp.status in (401, 403):
            return await stream_response(request, resp)
    finally:
        resp.release()
    # No handler for "/" on this node: answer as Elasticsearch would.
    headers.popall("Content-Length", None)
    status, doc = await build_root_document(upstream, headers)
    if status != 200:
        raise EsError(status, "status_exception", f"Elasticsearch answered {status}: {doc}")
    if request.method == "HEAD":
        return web.Response(status=200, headers={"X-elastic-product": "Elasticsearch",
                                                 "Content-Type": "application/json"})
    return json_response(doc)
