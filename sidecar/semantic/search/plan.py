"""A search ready to run, and what it needs after Elasticsearch answers: the
``_sidecar_inference`` internals hidden from ``_source``, semantic_text fields taken out of
``highlight`` and ``fields`` (the sidecar answers those itself)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..highlight import FieldHighlight
from ..layout import INFERENCE_ROOT
from ..queries.clauses import listify, matches_any
from ..queries.context import IndexInfo, SemanticLeaf
from ..queries.errors import parsing_error
from ..queries.rewriter import QueryRewriter
from .retrievers import Retriever

INFERENCE_FIELDS = "_inference_fields"


@dataclass
class PostProcess:
    # semantic_text field -> highlighter options
    highlight: dict[str, FieldHighlight] = field(default_factory=dict)
    # semantic_text field -> the query embeddings its chunks are scored against
    highlight_leaves: dict[str, list[SemanticLeaf]] = field(default_factory=dict)
    # semantic_text fields asked for in ``fields``
    field_values: set[str] = field(default_factory=set)
    # semantic_text fields asked for in ``fields`` with ``"format": "chunks"`` (9.2+)
    chunk_fields: set[str] = field(default_factory=set)
    inference_fields: bool = False
    # ``_source.exclude_vectors: false``: the chunks come back in ``_source._inference_fields``.
    source_inference_fields: bool = False
    strip_fields: bool = False
    filter_path: str | None = None
    # Indices whose shards fail as Elasticsearch's would (the others answer).
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    shards: dict[str, int] = field(default_factory=dict)

    @property
    def needed(self) -> bool:
        return bool(self.highlight or self.field_values or self.chunk_fields or self.inference_fields
                    or self.source_inference_fields
                    or self.strip_fields or self.failures)


@dataclass
class Plan:
    """A search ready to run."""

    index: str | None
    params: dict[str, str]
    body: dict[str, Any]
    targets: dict[str, IndexInfo]
    changed: bool = False
    retriever: Retriever | None = None
    post: PostProcess = field(default_factory=PostProcess)
    execute_here: bool = False
    # When planning began (the inference it ran counts in ``took``).
    started: float = field(default_factory=time.monotonic)


def _names_inference(patterns: Iterable[Any]) -> bool:
    return any(isinstance(p, str) and p.startswith(INFERENCE_ROOT) for p in patterns)


def hide_inference_params(params: dict[str, str]) -> bool:
    """URL-level ``_source`` options: add ``_source_excludes`` unless the request names the
    internals or asks for no source."""
    if params.get("_source") in ("false", "0"):
        return False
    includes = (params.get("_source_includes") or "").split(",")
    if params.get("_source") not in (None, "true", "1"):
        includes += params["_source"].split(",")
    if _names_inference(includes):
        return False
    excludes = [e for e in (params.get("_source_excludes") or "").split(",") if e]
    params["_source_excludes"] = ",".join([*excludes, INFERENCE_ROOT])
    return True


def names_inference_fields(body: dict[str, Any], params: Mapping[str, str]) -> bool:
    """Whether ``_source`` includes name ``_inference_fields`` (URL parameters win over the body)."""
    if any(k in params for k in ("_source", "_source_includes")):
        includes = (params.get("_source_includes") or "").split(",")
        if params.get("_source") not in (None, "true", "1", "false", "0"):
            includes += params["_source"].split(",")
        return INFERENCE_FIELDS in includes
    src = body.get("_source")
    if isinstance(src, dict):
        src = src.get("includes", src.get("include"))
    return INFERENCE_FIELDS in listify(src) if isinstance(src, (str, list)) else False


def asks_for_vectors(body: dict[str, Any], params: Mapping[str, str]) -> bool:
    """``_source.exclude_vectors: false`` (or ``?_source_exclude_vectors=false``): Elasticsearch
    then returns each semantic_text field's chunks and embeddings in ``_source._inference_fields``."""
    if "_source_exclude_vectors" in params:
        return params["_source_exclude_vectors"] == "false"
    src = body.get("_source")
    return isinstance(src, dict) and src.get("exclude_vectors") is False


def hide_inference(body: dict[str, Any], params: dict[str, str]) -> bool:
    """Exclude ``_sidecar_inference`` from ``_source`` unless the request names it (URL
    parameters win over the body, as in Elasticsearch). Returns whether the request changed."""
    if any(k in params for k in ("_source", "_source_includes", "_source_excludes")):
        return hide_inference_params(params)
    if "_none_" in listify(params.get("stored_fields") or body.get("stored_fields")):
        return False  # no _source at all
    src = body.get("_source", True)
    if src is False:
        return False
    if src is True:
        body["_source"] = {"excludes": [INFERENCE_ROOT]}
        return True
    if isinstance(src, (str, list)):
        includes = listify(src)
        if _names_inference(includes):
            return False
        body["_source"] = {"includes": includes, "excludes": [INFERENCE_ROOT]}
        return True
    if isinstance(src, dict):
        includes = listify(src.get("includes", src.get("include")))
        if _names_inference(includes):
            return False
        key = "excludes" if "excludes" in src or "exclude" not in src else "exclude"
        body["_source"] = {**src, key: [*listify(src.get(key)), INFERENCE_ROOT]}
        return True
    return False


def contains_match_all(query: Any) -> bool:
    if isinstance(query, dict):
        return "match_all" in query or any(contains_match_all(v) for v in query.values())
    if isinstance(query, list):
        return any(contains_match_all(v) for v in query)
    return False


def semantic_field_names(targets: Mapping[str, IndexInfo]) -> set[str]:
    return {name for info in targets.values() if info.semantics is not None for name in info.semantics.fields}


async def plan_highlight(plan: Plan, rw: QueryRewriter, semantic_fields: set[str],
                         query_leaves: list[SemanticLeaf], match_all: bool) -> bool:
    """Take the semantic_text fields out of ``highlight`` (the sidecar highlights them, with the
    query embeddings of ``query_leaves``); returns whether the body changed."""
    body = plan.body
    hl = dict(body["highlight"])
    changed = False
    global_leaves = query_leaves
    global_match_all = match_all
    if "highlight_query" in hl:
        before = len(rw.leaves)
        hl["highlight_query"] = await rw.query(hl["highlight_query"])
        global_leaves = rw.leaves[before:]
        global_match_all = contains_match_all(hl["highlight_query"])
        changed = True
    global_semantic = hl.get("type") == "semantic"
    if global_semantic:
        hl.pop("type")
        changed = True
    spec = hl.get("fields")
    entries = list(spec.items()) if isinstance(spec, dict) else \
        [next(iter(e.items())) for e in listify(spec) if isinstance(e, dict) and len(e) == 1]
    kept: list[tuple[str, Any]] = []
    global_options = {k: v for k, v in hl.items() if k not in ("fields", "highlight_query")}
    for name, options in entries:
        if options is not None and not isinstance(options, dict):
            raise parsing_error(f"[highlight] field [{name}] options must be an object")
        options = dict(options or {})
        matched = sorted(f for f in semantic_fields if matches_any(f, [name]))
        leaves, with_all = global_leaves, global_match_all
        if "highlight_query" in options:
            before = len(rw.leaves)
            options["highlight_query"] = await rw.query(options["highlight_query"])
            leaves, with_all = rw.leaves[before:], contains_match_all(options["highlight_query"])
            changed = True
        for fname in matched:
            plan.post.highlight[fname] = FieldHighlight.from_options(global_options, options)
            picked = [leaf for leaf in leaves if leaf.field == fname]
            if with_all:
                picked.append(SemanticLeaf(fname, frozenset(plan.targets), None))
            plan.post.highlight_leaves[fname] = picked
        forced = global_semantic or options.get("type") == "semantic"
        if name in semantic_fields or forced:
            changed = True
            continue
        kept.append((name, options))
    if isinstance(spec, dict):
        hl["fields"] = dict(kept)
    else:
        hl["fields"] = [{k: v} for k, v in kept]
    if kept:
        body["highlight"] = hl
    else:
        body.pop("highlight")
    return changed


def plan_fields(plan: Plan, semantic_fields: set[str]) -> bool:
    """Note the semantic_text fields ``fields`` asks for (the sidecar adds their values); returns
    whether the body changed."""
    body = plan.body
    changed = False
    if "fields" in body:
        kept = []
        for entry in listify(body["fields"]):
            pattern = entry.get("field") if isinstance(entry, dict) else entry
            if pattern == INFERENCE_FIELDS:
                plan.post.inference_fields = True
                changed = True
                continue
            if isinstance(entry, dict) and entry.get("format") == "chunks" and isinstance(pattern, str):
                matched = {f for f in semantic_fields if matches_any(f, [pattern])}
                if matched:
                    plan.post.chunk_fields |= matched
                    changed = True
                    continue
            if isinstance(pattern, str):
                plan.post.field_values |= {f for f in semantic_fields if matches_any(f, [pattern])}
            kept.append(entry)
        if kept:
            body["fields"] = kept
        else:
            body.pop("fields")
        plan.post.strip_fields = True
    if "docvalue_fields" in body:
        plan.post.strip_fields = True
    return changed
