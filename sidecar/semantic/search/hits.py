"""Search hits finished with what Elasticsearch cannot produce: the semantic highlighter's
fragments, semantic_text values for ``fields``, ``_inference_fields``, and the shards of
indices whose queries fail counted as failed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...es.caller import Caller
from ...es.node import NodeVersion
from ..highlight import chunk_texts, fragments
from ..layout import INFERENCE_ROOT, inference_path
from ..metadata import IndexSemantics
from ..values import MISSING, get_path
from .plan import Plan


async def finish(caller: Caller, plan: Plan, response: dict[str, Any], node_version: NodeVersion) -> None:
    """Add what Elasticsearch cannot produce to a search response's hits."""
    post = plan.post
    if post.failures:
        report_failures(response, post.failures, post.shards)
    hits = ((response.get("hits") or {}).get("hits")) or []
    if not hits or not post.needed:
        return
    for hit in hits:
        fields = hit.get("fields")
        if isinstance(fields, dict):
            for key in [k for k in fields if k.startswith(INFERENCE_ROOT)]:
                del fields[key]
    wanted: list[tuple[dict[str, Any], IndexSemantics, list[str]]] = []
    for hit in hits:
        info = plan.targets.get(hit.get("_index"))
        semantics = info.semantics if info is not None else None
        if semantics is None:
            continue
        paths: list[str] = []
        for name in (post.highlight.keys() | post.chunk_fields) & semantics.fields.keys():
            # The chunks and every text their offsets index into.
            paths += [inference_path(name) + ".chunks", name,
                      *(src for src, targets in semantics.copy_to.items() if name in targets)]
        paths.extend(name for name in post.field_values if name in semantics.fields)
        if post.inference_fields or post.source_inference_fields:
            paths.append(INFERENCE_ROOT)
        if paths:
            wanted.append((hit, semantics, sorted(set(paths))))
    if not wanted:
        return
    sources = await _fetch_sources(caller, [(hit, paths) for hit, _, paths in wanted], node_version)
    for (hit, semantics, _), source in zip(wanted, sources, strict=True):
        if source is None:
            continue
        _decorate_hit(plan, hit, semantics, source)


async def _fetch_sources(caller: Caller, docs: list[tuple[dict[str, Any], list[str]]],
                         node_version: NodeVersion) -> list[Any]:
    entries = []
    for hit, paths in docs:
        entry: dict[str, Any] = {"_index": hit["_index"], "_id": hit["_id"], "_source": {"includes": paths}}
        if hit.get("_routing") is not None:
            entry["routing"] = hit["_routing"]
        entries.append(entry)
    params = {"realtime": "false", **await node_version.vectors_params()}
    answer = await caller.send("POST", "/_mget", {"docs": entries}, params)
    if answer.status != 200:
        return [None] * len(docs)
    found = answer.body.get("docs") or []
    return [d.get("_source") if isinstance(d, dict) and d.get("found") else None for d in found]


def _decorate_hit(plan: Plan, hit: dict[str, Any], semantics: IndexSemantics, source: dict[str, Any]) -> None:
    post = plan.post
    index = hit["_index"]
    for name, options in post.highlight.items():
        fld = semantics.fields.get(name)
        if fld is None:
            continue
        leaves = [leaf.embedding for leaf in post.highlight_leaves.get(name, []) if index in leaf.indices]
        chunks = get_path(source, inference_path(name) + ".chunks")
        if chunks is MISSING or not isinstance(chunks, list):
            continue
        similarity = (fld.model_settings or {}).get("similarity") or "cosine"
        texts = fragments(source, chunks, leaves, similarity, options, name)
        if texts:
            hit.setdefault("highlight", {})[name] = texts
    for name in sorted(post.chunk_fields & semantics.fields.keys()):
        chunks = get_path(source, inference_path(name) + ".chunks")
        if isinstance(chunks, list) and chunks:
            hit.setdefault("fields", {})[name] = chunk_texts(source, chunks, name)
    for name in sorted(post.field_values):
        if name not in semantics.fields:
            continue
        value = get_path(source, name)
        if value is MISSING or value is None:
            continue
        hit.setdefault("fields", {})[name] = value if isinstance(value, list) else [value]
    if post.inference_fields or post.source_inference_fields:
        out = {}
        for name, fld in semantics.fields.items():
            data = get_path(source, inference_path(name))
            if data is MISSING or not isinstance(data, dict):
                continue
            grouped: dict[str, list[dict[str, Any]]] = {}
            for chunk in data.get("chunks") or []:
                entry = {k: chunk[k] for k in ("start_offset", "end_offset", "embeddings") if k in chunk}
                grouped.setdefault(chunk.get("source") or name, []).append(entry)
            inference = {"inference_id": data.get("inference_id") or fld.inference_id,
                         "model_settings": fld.model_settings, "chunks": grouped}
            out[name] = {"inference": inference}
        # Elasticsearch returns the inference metadata field inside ``_source``, whether asked for
        # through ``fields``, ``_source`` includes or ``exclude_vectors: false``.
        if out and isinstance(hit.get("_source"), dict):
            hit["_source"]["_inference_fields"] = out
        elif out and post.inference_fields:
            hit["_source"] = {"_inference_fields": out}


def report_failures(response: dict[str, Any], failures: Mapping[str, dict[str, Any]],
                    shards: Mapping[str, int]) -> None:
    """Count the shards of failed indices as failed in ``_shards``, as Elasticsearch does."""
    summary = response.get("_shards")
    if not isinstance(summary, dict):
        return
    entries = summary.setdefault("failures", [])
    for index, cause in failures.items():
        count = shards.get(index, 1)
        summary["successful"] = max(0, summary.get("successful", 0) - count)
        summary["failed"] = summary.get("failed", 0) + count
        entries.extend({"shard": shard, "index": index, "reason": dict(cause)} for shard in range(count))
