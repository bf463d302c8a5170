"""Search over semantic_text and the inference queries, on a node without the inference plugin.

:class:`SemanticSearch` takes a search request (index expression, URL parameters, body) and
answers it as Elasticsearch with the inference plugin would:

* requests with nothing to rewrite are forwarded byte for byte;
* inference queries are rewritten (:mod:`sidecar.semantic.queries`) and the request forwarded;
* ``rrf`` (when the node lacks it) and ``text_similarity_reranker`` retrievers are executed
  here like Elasticsearch's compound retrievers: in a point in time, each child retriever runs
  as a search of ``rank_window_size`` hits sorted by score then ``_shard_doc``, the results are
  fused or reranked, and one final search over the union of the child queries (so totals and
  aggregations are Elasticsearch's) fetches the requested page with the computed scores;
* responses get the semantic highlighter's fragments, semantic_text values for ``fields``,
  ``_inference_fields`` when asked for, and never the ``_sidecar_inference`` internals.

Requests go to Elasticsearch with the caller's own headers, so its security applies; index
metadata is read with the sidecar's credentials (cached briefly).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from elasticsearch import ApiError, AsyncElasticsearch
from elasticsearch import ConnectionError as EsConnectionError
from multidict import CIMultiDict

from ..errors import EsError, action_request_validation, illegal_argument, unavailable
from ..es.node import NodeVersion
from ..proxy import Upstream, body_content_type
from ..singleflight import SingleFlight
from .fill import MISSING, get_path
from .highlight import FieldHighlight, chunk_texts, fragments
from .layout import INFERENCE_ROOT, inference_path
from .metadata import IndexSemantics, SemanticIndices
from .queries.clauses import index_filtered, matches_any
from .queries.context import IndexInfo, RewriteContext, SemanticLeaf
from .queries.embedder import Embedder
from .queries.errors import ShardFailure, parsing_error
from .queries.rewriter import KEYWORDS, QueryRewriter
from .query_cache import QueryEmbeddingCache
from .rerank import DEFAULT_RERANK_ID, rerank
from .rrf import DEFAULT_RANK_CONSTANT, DEFAULT_RANK_WINDOW_SIZE, Ranked, f32, fuse

log = logging.getLogger("sidecar.search")

PIT_KEEP_ALIVE = "1m"
# URL parameters that say which indices a search reads (they go to the point in time instead).
INDEX_PARAMS = ("routing", "preference", "expand_wildcards", "ignore_unavailable", "allow_no_indices",
                "ignore_throttled", "ccs_minimize_roundtrips")
# Body keys Elasticsearch refuses next to a retriever (as it names them).
NOT_WITH_RETRIEVER = {"query": "query", "sub_searches": "query", "knn": "knn", "search_after": "search_after",
                      "terminate_after": "terminate_after", "sort": "sort", "rescore": "rescore",
                      "min_score": "min_score", "rank": "rank"}
_BODY_HEADERS = ("Content-Length", "Content-Encoding", "Transfer-Encoding", "Accept-Encoding", "Content-Type")


# -- talking to Elasticsearch ------------------------------------------------------------------


class UpstreamError(EsError):
    """An error answer from Elasticsearch, passed on unchanged."""

    def __init__(self, status: int, body: Any) -> None:
        reason = body.get("error", {}).get("reason", "") if isinstance(body, dict) and isinstance(
            body.get("error"), dict) else str(body)
        super().__init__(status, "upstream_error", reason)
        self.body = body

    def to_body(self) -> Any:
        return self.body


@dataclass
class Answer:
    status: int
    body: Any
    warnings: list[str] = field(default_factory=list)
    # ``filter_path`` still to apply (the search needed the full response first).
    filter_path: str | None = None

    def ok(self) -> Any:
        if self.status >= 300:
            raise UpstreamError(self.status, self.body)
        return self.body


class Caller:
    """Requests to Elasticsearch on behalf of one client request (its headers, its rights)."""

    def __init__(self, upstream: Upstream, headers: Mapping[str, str]) -> None:
        self.upstream = upstream
        self.headers: CIMultiDict[str] = CIMultiDict(headers)
        for name in _BODY_HEADERS:
            self.headers.popall(name, None)
        self.warnings: list[str] = []

    async def send(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None,
                   *, ndjson: bool = False) -> Answer:
        headers = self.headers.copy()
        data = None
        if body is not None:
            data = b"".join(orjson.dumps(line) + b"\n" for line in body) if ndjson else orjson.dumps(body)
        if data is not None:
            headers["Content-Type"] = body_content_type(headers, ndjson=ndjson)
        url = path + (f"?{urlencode(params)}" if params else "")
        resp = await self.upstream.request(method, url, headers=headers, data=data)
        try:
            payload = await resp.read()
        finally:
            resp.release()
        warnings = resp.headers.getall("Warning", [])
        for warning in warnings:
            if warning not in self.warnings:
                self.warnings.append(warning)
        try:
            parsed = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            parsed = {"error": payload.decode(errors="replace")}
        return Answer(resp.status, parsed, warnings)


def index_path(index: str | None, endpoint: str) -> str:
    return f"/{quote(index, safe=',*:')}/{endpoint}" if index else f"/{endpoint}"


# -- index metadata ------------------------------------------------------------------------------


class IndexCatalog:
    """The concrete indices a search reads, with their creation version and semantic fields.
    Answers are cached for ``ttl_s``, and until the semantic metadata is invalidated (a mapping
    change of this process); after that, concurrent searches of one expression share one
    re-read."""

    def __init__(self, es: AsyncElasticsearch, semantic: SemanticIndices, ttl_s: float = 1.0) -> None:
        self.es = es
        self.semantic = semantic
        self.ttl_s = ttl_s
        # key -> (read at, semantic generation it was built on, answer)
        self._cache: dict[tuple[str, str], tuple[float, int, dict[str, IndexInfo]]] = {}
        self._loads: SingleFlight[dict[str, IndexInfo]] = SingleFlight()

    async def targets(self, expression: str | None, expand_wildcards: str | None = None) -> dict[str, IndexInfo]:
        expression = expression or "_all"
        key = (expression, expand_wildcards or "")
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s and hit[1] == self.semantic.generation:
            return hit[2]
        generation = self.semantic.generation
        return await self._loads.run((key, generation), lambda: self._load(key, generation))

    async def _load(self, key: tuple[str, str], generation: int) -> dict[str, IndexInfo]:
        now = time.monotonic()
        expression, expand_wildcards = key
        semantics = await self.semantic.resolve(expression)
        try:
            kwargs: dict[str, Any] = {"index": expression, "name": "index.version.created,index.number_of_shards",
                                      "flat_settings": True,
                                      "ignore_unavailable": True, "allow_no_indices": True}
            if expand_wildcards:
                kwargs["expand_wildcards"] = expand_wildcards
            resp = await self.es.indices.get_settings(**kwargs)
            settings = resp.body
        except EsConnectionError as exc:
            raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        except ApiError:
            settings = {}
        result: dict[str, IndexInfo] = {}
        for index, body in settings.items():
            values = body.get("settings") or {}
            try:
                version = int(values.get("index.version.created", 0))
                shards = int(values.get("index.number_of_shards", 1))
            except ValueError:
                version, shards = 0, 1
            result[index] = IndexInfo(index, version, semantics.get(index), shards)
        for index, sem in semantics.items():
            result.setdefault(index, IndexInfo(index, 0, sem))
        if generation == self.semantic.generation:
            self._cache[key] = (now, generation, result)
        return result

    async def field_types(self, field_name: str, indices: list[str]) -> dict[str, dict[str, Any] | None]:
        out: dict[str, dict[str, Any] | None] = {i: None for i in indices}
        if not indices:
            return out
        if not isinstance(field_name, str) or not field_name:
            raise parsing_error("[semantic] requires a non-empty [field]")
        try:
            resp = await self.es.indices.get_field_mapping(
                index=",".join(indices), fields=field_name, ignore_unavailable=True, allow_no_indices=True)
        except EsConnectionError as exc:
            raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        except ApiError:
            return out
        leaf = field_name.rsplit(".", 1)[-1]
        for index, body in resp.body.items():
            found = (body.get("mappings") or {}).get(field_name)
            if found and index in out:
                out[index] = (found.get("mapping") or {}).get(leaf) or {"type": "object"}
        return out


class Capabilities:
    """What the node runs itself, learnt once by asking it."""

    PROBE_INDEX = "sidecar-capability-probe-does-not-exist"

    def __init__(self, es: AsyncElasticsearch) -> None:
        self.es = es
        self.sparse_vector: bool | None = None
        self.rrf: bool | None = None
        self._lock = asyncio.Lock()

    async def native_sparse_vector(self) -> bool:
        return await self._learn("sparse_vector", self._probe_sparse)

    async def native_rrf(self) -> bool:
        return await self._learn("rrf", self._probe_rrf)

    async def _learn(self, name: str, probe) -> bool:
        if getattr(self, name) is None:
            async with self._lock:
                if getattr(self, name) is None:
                    setattr(self, name, await probe())
        return bool(getattr(self, name))

    async def _probe_sparse(self) -> bool:
        try:
            resp = await self.es.indices.validate_query(
                index=self.PROBE_INDEX, ignore_unavailable=True, allow_no_indices=True,
                query={"sparse_vector": {"field": "probe", "query_vector": {"probe": 1.0}}})
            return bool(resp.body.get("valid"))
        except EsConnectionError as exc:
            raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        except ApiError:
            return False

    async def _probe_rrf(self) -> bool:
        standard = {"standard": {"query": {"match_all": {}}}}
        try:
            await self.es.search(index=self.PROBE_INDEX, ignore_unavailable=True, allow_no_indices=True, size=0,
                                 retriever={"rrf": {"retrievers": [standard, standard]}})
            return True
        except EsConnectionError as exc:
            raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        except ApiError:
            return False


# -- retrievers ------------------------------------------------------------------------------------


@dataclass
class Retriever:
    kind: str
    spec: dict[str, Any]
    children: list[Retriever] = field(default_factory=list)
    query: Any = None
    filters: list[Any] = field(default_factory=list)
    knn: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    window: int = DEFAULT_RANK_WINDOW_SIZE
    rank_constant: int = DEFAULT_RANK_CONSTANT
    min_score: float | None = None
    rerank_field: str | None = None
    inference_id: str | None = None
    inference_text: str | None = None
    # text_similarity_reranker: on an inference failure, answer the child's hits as they are.
    allow_rerank_failures: bool = False

    @property
    def compound(self) -> bool:
        return self.kind in ("rrf", "text_similarity_reranker")

    def add_filter(self, query: dict[str, Any]) -> None:
        if self.kind == "knn":
            self.knn = [{**s, "filter": [*_listify(s.get("filter")), query]} for s in self.knn]
        else:
            self.filters.append(query)

    def kinds(self) -> set[str]:
        out = {self.kind}
        for child in self.children:
            out |= child.kinds()
        return out

    def to_json(self) -> dict[str, Any]:
        """The retriever as the node runs it natively (leaf queries rewritten)."""
        spec = dict(self.spec)
        if self.kind == "standard":
            if self.query is not None:
                spec["query"] = self.query
            if self.filters:
                spec["filter"] = self.filters
            return {"standard": spec}
        if self.kind == "knn":
            if len(self.knn) == 1:
                return {"knn": {**self.knn[0], **{k: spec[k] for k in ("_name", "min_score") if k in spec}}}
            query = {"bool": {"should": [section_as_query(s) for s in self.knn]}}
            return {"standard": {"query": query, **{k: spec[k] for k in ("_name", "min_score") if k in spec}}}
        if self.kind == "rrf":
            spec["retrievers"] = [c.to_json() for c in self.children]
            if self.filters:
                spec["filter"] = self.filters
            return {"rrf": spec}
        return {self.kind: spec}


def section_as_query(section: dict[str, Any]) -> dict[str, Any]:
    """A top-level knn section as a query (nested when it searches chunk embeddings)."""
    body = dict(section)
    body.pop("inner_hits", None)
    path = body.get("field", "")
    if isinstance(path, str) and path.startswith(INFERENCE_ROOT + ".") and path.endswith(".chunks.embeddings"):
        return {"nested": {"path": path[: -len(".embeddings")], "query": {"knn": body}, "score_mode": "max"}}
    return {"knn": body}


def _int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise parsing_error(f"[{name}] must be an integer")
    try:
        return int(value)
    except ValueError:
        raise parsing_error(f"[{name}] must be an integer") from None


async def build_retriever(value: Any, rw: QueryRewriter) -> Retriever:
    if not isinstance(value, dict) or len(value) != 1:
        raise parsing_error("retriever malformed, must have a single retriever type")
    (kind, spec), = value.items()
    if not isinstance(spec, dict):
        raise parsing_error(f"[{kind}] retriever malformed, expected an object")
    node = Retriever(kind, dict(spec))
    node.filters = list(await rw.rewrite_each(_listify(spec.get("filter"))))
    if spec.get("min_score") is not None:
        if not isinstance(spec["min_score"], (int, float)) or isinstance(spec["min_score"], bool):
            raise parsing_error(f"[{kind}] retriever failed to parse field [min_score]: expected a number")
        node.min_score = float(spec["min_score"])
    if kind == "standard":
        node.query = await rw.query(spec["query"]) if "query" in spec else None
        node.options = {k: spec[k] for k in ("sort", "min_score", "collapse", "terminate_after", "search_after")
                        if k in spec}
    elif kind == "knn":
        section = {k: v for k, v in spec.items() if k not in ("_name", "min_score")}
        node.knn = await rw.knn_body(section, section=True)
    elif kind == "rrf":
        children = spec.get("retrievers")
        if not isinstance(children, list):
            raise parsing_error("[rrf] requires [retrievers]")
        node.window = _int(spec.get("rank_window_size"), "rank_window_size", DEFAULT_RANK_WINDOW_SIZE)
        node.children = await _build_children(children, rw, node.window)
        node.rank_constant = _int(spec.get("rank_constant"), "rank_constant", DEFAULT_RANK_CONSTANT)
        if node.rank_constant < 1:
            raise illegal_argument("[rank_constant] must be greater than or equal to [1] for [rrf]")
    elif kind == "text_similarity_reranker":
        missing = [k for k in ("retriever", "inference_text", "field") if spec.get(k) is None]
        if missing:
            raise EsError(400, "x_content_parse_exception",
                          f"[text_similarity_reranker] Required [{', '.join(missing)}]")
        node.window = _int(spec.get("rank_window_size"), "rank_window_size", DEFAULT_RANK_WINDOW_SIZE)
        node.children = await _build_children([spec["retriever"]], rw, node.window)
        node.rerank_field = str(spec["field"])
        node.inference_id = str(spec.get("inference_id") or DEFAULT_RERANK_ID)
        node.inference_text = str(spec["inference_text"])
        allow = spec.get("allow_rerank_failures", False)
        if not isinstance(allow, bool):
            raise parsing_error("[text_similarity_reranker] failed to parse field [allow_rerank_failures]")
        node.allow_rerank_failures = allow
    if node.compound:
        if node.window < 0:
            raise action_request_validation(
                f"[rank_window_size] parameter cannot be negative, found [{node.window}]")
        for child in node.children:
            if child.compound and node.window > child.window:
                raise action_request_validation(
                    f"[{kind}] requires [rank_window_size: {node.window}] to be smaller than or equal to its "
                    f"sub retriever's {child.kind} [rank_window_size: {child.window}]")
    return node


async def _build_children(children: list[Any], rw: QueryRewriter, window: int) -> list[Retriever]:
    """Child retrievers run as searches of ``window`` hits: their semantic queries are built
    for that size (one at a time, as the size is the rewriter's)."""
    saved, rw.ctx.size = rw.ctx.size, window
    try:
        return [await build_retriever(child, rw) for child in children]
    finally:
        rw.ctx.size = saved


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


# -- what a search needs after Elasticsearch answers ----------------------------------------------


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
    if "_none_" in _listify(params.get("stored_fields") or body.get("stored_fields")):
        return False  # no _source at all
    src = body.get("_source", True)
    if src is False:
        return False
    if src is True:
        body["_source"] = {"excludes": [INFERENCE_ROOT]}
        return True
    if isinstance(src, (str, list)):
        includes = _listify(src)
        if _names_inference(includes):
            return False
        body["_source"] = {"includes": includes, "excludes": [INFERENCE_ROOT]}
        return True
    if isinstance(src, dict):
        includes = _listify(src.get("includes", src.get("include")))
        if _names_inference(includes):
            return False
        key = "excludes" if "excludes" in src or "exclude" not in src else "exclude"
        body["_source"] = {**src, key: [*_listify(src.get(key)), INFERENCE_ROOT]}
        return True
    return False


def contains_match_all(query: Any) -> bool:
    if isinstance(query, dict):
        return "match_all" in query or any(contains_match_all(v) for v in query.values())
    if isinstance(query, list):
        return any(contains_match_all(v) for v in query)
    return False


def _semantic_fields(targets: Mapping[str, IndexInfo]) -> set[str]:
    return {name for info in targets.values() if info.semantics is not None for name in info.semantics.fields}


# -- the service -------------------------------------------------------------------------------------


class SemanticSearch:
    def __init__(self, *, endpoints: Any, semantic: SemanticIndices, es: AsyncElasticsearch, upstream: Upstream,
                 cache: QueryEmbeddingCache | None = None, timeout_s: float | None = 30.0,
                 node_version: NodeVersion | None = None) -> None:
        self.endpoints = endpoints
        self.node_version = node_version or NodeVersion(es)
        self.semantic = semantic
        self.upstream = upstream
        self.cache = cache or QueryEmbeddingCache()
        self.embedder = Embedder(endpoints, self.cache, timeout_s)
        self.catalog = IndexCatalog(es, semantic)
        self.caps = Capabilities(es)
        self.timeout_s = timeout_s

    # -- cheap checks ------------------------------------------------------------------------------
    async def has_semantic(self, expression: str | None) -> bool:
        return bool(await self.semantic.resolve(expression or "_all"))

    @staticmethod
    def mentions_inference(raw: bytes) -> bool:
        return any(word in raw for word in KEYWORDS)

    async def needs_parsing(self, expression: str | None, raw: bytes) -> bool:
        return self.mentions_inference(raw) or await self.has_semantic(expression)

    async def any_semantic(self, expressions: Iterable[str | None]) -> bool:
        for expression in expressions:
            if await self.has_semantic(expression):
                return True
        return False

    # -- planning ----------------------------------------------------------------------------------
    async def _rewriter(self, index: str | None, params: Mapping[str, str],
                        body: dict[str, Any]) -> tuple[QueryRewriter, dict[str, IndexInfo]]:
        expression = None if isinstance(body.get("pit"), dict) else index
        targets = await self.catalog.targets(expression, params.get("expand_wildcards"))
        size = params.get("size", body.get("size"))
        ctx = RewriteContext(indices=targets, embedder=self.embedder, field_types=self.catalog.field_types,
                             size=int(size) if isinstance(size, (int, str)) and str(size).isdigit() else None,
                             native_sparse=True)
        if self.mentions_inference(orjson.dumps(body)):
            ctx.native_sparse = await self.caps.native_sparse_vector()
        return QueryRewriter(ctx), targets

    async def count_body(self, index: str | None, params: Mapping[str, str], body: Any) -> dict[str, Any] | None:
        """A ``_count`` body with its query rewritten; None when there is nothing to rewrite."""
        if not isinstance(body, dict) or "query" not in body:
            return None
        body = copy.deepcopy(body)
        rw, targets = await self._rewriter(index, params, body)
        body["query"] = await rw.query(body["query"])
        if rw.failures:
            excluded = self._failed(rw, targets)
            body["query"] = {"bool": {"must": body["query"], "must_not": excluded}}
        return body if rw.changed else None

    @staticmethod
    def _failed(rw: QueryRewriter, targets: Mapping[str, IndexInfo]) -> dict[str, Any]:
        """Raise when every index fails; else the filter that leaves the failed ones out."""
        if set(rw.failures) >= set(targets):
            raise ShardFailure.of(rw.failures)
        return {"terms": {"_index": sorted(rw.failures)}}

    async def plan(self, index: str | None, params: Mapping[str, str], body: Any) -> Plan:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise parsing_error("request body or source parameter is required")
        body = copy.deepcopy(body)
        params = dict(params)
        rw, targets = await self._rewriter(index, params, body)
        plan = Plan(index, params, body, targets)
        query_leaves: list[SemanticLeaf] = []
        # What the highlighter sees as the query (no query at all is match_all).
        match_all = "query" not in body and "knn" not in body and "retriever" not in body
        match_all = match_all or contains_match_all(body.get("query")) or contains_match_all(body.get("retriever"))

        if "retriever" in body:
            plan.retriever = await build_retriever(body["retriever"], rw)
            query_leaves = list(rw.leaves)
            kinds = plan.retriever.kinds()
            if "text_similarity_reranker" in kinds or ("rrf" in kinds and not await self.caps.native_rrf()):
                plan.execute_here = True
            else:
                body["retriever"] = plan.retriever.to_json()
        if "query" in body:
            body["query"] = await rw.query(body["query"])
            query_leaves = list(rw.leaves)
        if "knn" in body:
            body["knn"] = await rw.knn_section(body["knn"])
        for key in ("post_filter",):
            if key in body:
                body[key] = await rw.query(body[key])
        for rescore in _listify(body.get("rescore")):
            if isinstance(rescore, dict) and isinstance(rescore.get("query"), dict) \
                    and "rescore_query" in rescore["query"]:
                rescore["query"]["rescore_query"] = await rw.query(rescore["query"]["rescore_query"])
        for sub in _listify(body.get("sub_searches")):
            if isinstance(sub, dict) and "query" in sub:
                sub["query"] = await rw.query(sub["query"])

        if rw.failures:
            self._exclude_failed(plan, rw)
        semantic_fields = _semantic_fields(targets)
        plan.changed = rw.changed
        if "highlight" in body and isinstance(body["highlight"], dict):
            plan.changed |= await self._plan_highlight(plan, rw, semantic_fields, query_leaves, match_all)
        if semantic_fields:
            plan.post.source_inference_fields = (asks_for_vectors(body, plan.params)
                                                 and (await self.node_version.features()).source_inference_fields)
            plan.changed |= hide_inference(body, plan.params)
            plan.changed |= self._plan_fields(plan, semantic_fields)
            if plan.post.chunk_fields and not (await self.node_version.features()).chunks_format:
                name = sorted(plan.post.chunk_fields)[0]
                raise illegal_argument(f"Field [{name}] of type [semantic_text] doesn't support formats.")
        if plan.execute_here:
            self._validate_compound(plan)
        if (plan.post.needed or plan.execute_here) and "filter_path" in plan.params:
            plan.post.filter_path = plan.params.pop("filter_path")
        return plan

    def _exclude_failed(self, plan: Plan, rw: QueryRewriter) -> None:
        """Indices whose shards would fail answer nothing (their failures are reported)."""
        excluded = self._failed(rw, plan.targets)
        body = plan.body
        if "query" in body:
            body["query"] = {"bool": {"must": body["query"], "must_not": excluded}}
        if "knn" in body:
            for section in _listify(body["knn"]):
                if isinstance(section, dict):
                    section["filter"] = [*_listify(section.get("filter")), {"bool": {"must_not": excluded}}]
        if plan.retriever is not None:
            plan.retriever.add_filter({"bool": {"must_not": excluded}})
            if not plan.execute_here:
                body["retriever"] = plan.retriever.to_json()
        plan.post.failures = dict(rw.failures)
        plan.post.shards = {index: plan.targets[index].shards for index in rw.failures if index in plan.targets}

    async def _plan_highlight(self, plan: Plan, rw: QueryRewriter, semantic_fields: set[str],
                              query_leaves: list[SemanticLeaf], match_all: bool) -> bool:
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
            [next(iter(e.items())) for e in _listify(spec) if isinstance(e, dict) and len(e) == 1]
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

    @staticmethod
    def _plan_fields(plan: Plan, semantic_fields: set[str]) -> bool:
        body = plan.body
        changed = False
        if "fields" in body:
            kept = []
            for entry in _listify(body["fields"]):
                pattern = entry.get("field") if isinstance(entry, dict) else entry
                if pattern == "_inference_fields":
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

    @staticmethod
    def _validate_compound(plan: Plan) -> None:
        body = plan.body
        specified = []
        for key, name in NOT_WITH_RETRIEVER.items():
            if key in body and name not in specified:
                specified.append(name)
        if specified:
            raise illegal_argument(f"cannot specify [retriever] and [{', '.join(specified)}]")
        root = plan.retriever
        assert root is not None
        size = _int(plan.params.get("size", body.get("size")), "size", 10)
        problems = []
        if size > root.window:
            problems.append(f"[{root.kind}] requires [rank_window_size: {root.window}] be greater than or equal to "
                            f"[size: {size}]")
        if "scroll" in plan.params:
            problems.append(f"cannot specify [{root.kind}] and [scroll]")
        if plan.params.get("allow_partial_search_results") == "true":
            problems.append(f"cannot specify [{root.kind}] and [allow_partial_search_results]")
        if problems:
            raise action_request_validation(*problems)

    # -- running -----------------------------------------------------------------------------------
    async def search(self, caller: Caller, plan: Plan, endpoint: str = "_search") -> Answer:
        """Run a planned search; the answer is what the client gets."""
        started = plan.started
        if plan.execute_here:
            body = await self._execute_compound(caller, plan, started)
            if endpoint == "_async_search":
                body = completed_async(body, started)
            return Answer(200, body, filter_path=plan.post.filter_path)
        answer = await caller.send("POST", index_path(plan.index, endpoint), plan.body, plan.params)
        if answer.status >= 300:
            return answer
        result = answer.body
        target = result.get("response") if endpoint == "_async_search" and isinstance(result, dict) else result
        if isinstance(target, dict):
            await self.finish(caller, plan, target)
            if isinstance(target.get("took"), int):
                target["took"] = int((time.monotonic() - started) * 1000)
        return Answer(answer.status, result, filter_path=plan.post.filter_path)

    async def finish(self, caller: Caller, plan: Plan, response: dict[str, Any]) -> None:
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
        sources = await self._fetch_sources(caller, [(hit, paths) for hit, _, paths in wanted])
        for (hit, semantics, _), source in zip(wanted, sources, strict=True):
            if source is None:
                continue
            self._decorate_hit(plan, hit, semantics, source)

    async def _fetch_sources(self, caller: Caller, docs: list[tuple[dict[str, Any], list[str]]]) -> list[Any]:
        entries = []
        for hit, paths in docs:
            entry: dict[str, Any] = {"_index": hit["_index"], "_id": hit["_id"], "_source": {"includes": paths}}
            if hit.get("_routing") is not None:
                entry["routing"] = hit["_routing"]
            entries.append(entry)
        params = {"realtime": "false", **await self.node_version.vectors_params()}
        answer = await caller.send("POST", "/_mget", {"docs": entries}, params)
        if answer.status != 200:
            return [None] * len(docs)
        found = answer.body.get("docs") or []
        return [d.get("_source") if isinstance(d, dict) and d.get("found") else None for d in found]

    @staticmethod
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
            if out and post.source_inference_fields and isinstance(hit.get("_source"), dict):
                hit["_source"]["_inference_fields"] = out
            elif out and post.inference_fields:
                hit.setdefault("fields", {})["_inference_fields"] = [out]

    # -- _msearch ----------------------------------------------------------------------------------
    async def plan_msearch(self, index: str | None, params: Mapping[str, str],
                           items: list[tuple[dict[str, Any], Any]]) -> list[Plan | EsError]:
        async def one(header: dict[str, Any], body: Any) -> Plan | EsError:
            target = header.get("index")
            if target is not None and not isinstance(target, str) and not (
                    isinstance(target, list) and all(isinstance(t, str) for t in target)):
                return parsing_error("[msearch] header [index] must be a string or an array of strings")
            expression = ",".join(target) if isinstance(target, list) else (target or index)
            item_params = {k: _param(v) for k, v in header.items() if k != "index"}
            try:
                return await self.plan(expression, item_params, body)
            except EsError as err:
                return err

        return list(await asyncio.gather(*(one(h, b) for h, b in items)))

    async def msearch(self, caller: Caller, index: str | None, params: Mapping[str, str],
                      items: list[tuple[dict[str, Any], Any]], plans: list[Plan | EsError]) -> Answer:
        started = time.monotonic()
        params = dict(params)
        filter_path = None
        if "filter_path" in params and any(isinstance(p, Plan) and (p.post.needed or p.execute_here) for p in plans):
            filter_path = params.pop("filter_path")
        results: list[Any] = [None] * len(plans)
        forwarded = [i for i, p in enumerate(plans) if isinstance(p, Plan) and not p.execute_here]
        here = [i for i, p in enumerate(plans) if isinstance(p, Plan) and p.execute_here]
        for i, p in enumerate(plans):
            if isinstance(p, EsError):
                results[i] = p.to_body()

        async def forward() -> None:
            if not forwarded:
                return
            lines: list[Any] = []
            for i in forwarded:
                plan = plans[i]
                assert isinstance(plan, Plan)
                lines.extend([items[i][0], plan.body])
            answer = (await caller.send("POST", index_path(index, "_msearch"), lines, params, ndjson=True)).ok()
            responses = answer.get("responses") or []
            for i, response in zip(forwarded, responses, strict=False):
                plan = plans[i]
                assert isinstance(plan, Plan)
                if isinstance(response, dict) and response.get("status", 200) < 300:
                    await self.finish(caller, plan, response)
                results[i] = response

        async def execute(i: int) -> None:
            plan = plans[i]
            assert isinstance(plan, Plan)
            try:
                answer = await self.search(caller, plan)
                body = answer.body
                if isinstance(body, dict) and "error" not in body:
                    body["status"] = answer.status
                results[i] = body
            except EsError as err:
                results[i] = err.to_body()

        await asyncio.gather(forward(), *(execute(i) for i in here))
        took = int((time.monotonic() - started) * 1000)
        return Answer(200, {"took": took, "responses": results}, filter_path=filter_path)

    # -- documents by id -----------------------------------------------------------------------------
    async def doc_params(self, index: str, params: Mapping[str, str]) -> dict[str, str] | None:
        """The URL parameters a get of a document (or its source) needs to hide the internals;
        None when the request can go through unchanged."""
        if not await self.has_semantic(index):
            return None
        out = dict(params)
        return out if hide_inference_params(out) else None

    async def mget_request(self, index: str | None, params: Mapping[str, str],
                           body: Any) -> tuple[dict[str, str], Any] | None:
        if not isinstance(body, dict):
            return None
        docs = body.get("docs") if isinstance(body.get("docs"), list) else []
        expressions = {d.get("_index") for d in docs if isinstance(d, dict) and d.get("_index")}
        if index:
            expressions.add(index)
        if not await self.any_semantic(expressions):
            return None
        out_params = dict(params)
        changed = hide_inference_params(out_params)
        body = copy.deepcopy(body)
        for doc in body.get("docs") or []:
            if isinstance(doc, dict) and "_source" in doc:
                changed |= hide_inference(doc, {})
        return (out_params, body) if changed else None

    # -- compound retrievers -------------------------------------------------------------------------
    async def _execute_compound(self, caller: Caller, plan: Plan, started: float) -> dict[str, Any]:
        root = plan.retriever
        assert root is not None
        body = plan.body
        size = _int(plan.params.get("size", body.get("size")), "size", 10)
        start = _int(plan.params.get("from", body.get("from")), "from", 0)
        run = _Run(self, caller, plan)
        await run.open_pit()
        try:
            ranked, union = await run.execute(root, root.window, [])
            page = ranked[start:start + size] if size > 0 else []
            final = {k: v for k, v in body.items()
                     if k not in ("retriever", "from", "size", "pit", "track_scores", "explain")}
            functions = [{"filter": _doc_filter(doc), "weight": float(len(page) - i + 1)}
                         for i, doc in enumerate(page)]
            query = union
            if functions:
                query = {"function_score": {"query": union, "functions": functions, "score_mode": "first",
                                            "boost_mode": "replace"}}
            final.update({"query": query, "size": len(page), "from": 0})
            response = (await run.search(final, final_params(plan.params))).ok()
        finally:
            await run.close_pit()
        hits = response.get("hits") or {}
        by_key = {(h.get("_index"), h.get("_id")): h for h in hits.get("hits") or []}
        ordered = []
        for doc in page:
            hit = by_key.get(doc.key)
            if hit is None:
                continue
            hit["_score"] = f32(doc.score)
            ordered.append(hit)
        hits["hits"] = ordered
        hits["max_score"] = f32(ranked[0].score) if ranked else None
        response["hits"] = hits
        if not run.user_pit:
            response.pop("pit_id", None)
        await self.finish(caller, plan, response)
        response["took"] = int((time.monotonic() - started) * 1000)
        return response


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


def _doc_filter(doc: Ranked) -> dict[str, Any]:
    return {"bool": {"filter": [{"term": {"_index": doc.index}}, {"ids": {"values": [doc.id]}}]}}


def _docs_query(docs: list[Ranked]) -> dict[str, Any]:
    by_index: dict[str, list[str]] = {}
    for doc in docs:
        by_index.setdefault(doc.index, []).append(doc.id)
    if not by_index:
        return {"match_none": {}}
    should = [index_filtered({"ids": {"values": ids}}, [index]) for index, ids in by_index.items()]
    return should[0] if len(should) == 1 else {"bool": {"should": should}}


def final_params(params: Mapping[str, str]) -> dict[str, str]:
    skip = {*INDEX_PARAMS, "size", "from", "q", "sort", "scroll", "search_type", "explain", "track_scores"}
    return {k: v for k, v in params.items() if k not in skip}


def completed_async(response: dict[str, Any], started: float) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"is_partial": False, "is_running": False, "start_time_in_millis": now - response.get("took", 0),
            "expiration_time_in_millis": now, "completion_time_in_millis": now, "response": response}


class _Run:
    """One execution of a compound retriever tree, inside one point in time."""

    def __init__(self, service: SemanticSearch, caller: Caller, plan: Plan) -> None:
        self.service = service
        self.caller = caller
        self.plan = plan
        self.pit: dict[str, Any] | None = None
        self.user_pit = isinstance(plan.body.get("pit"), dict)
        self.opened = False

    async def open_pit(self) -> None:
        if self.user_pit:
            self.pit = dict(self.plan.body["pit"])
            return
        params = {"keep_alive": PIT_KEEP_ALIVE, **{k: v for k, v in self.plan.params.items() if k in INDEX_PARAMS
                                                   and k != "ccs_minimize_roundtrips"}}
        answer = await self.caller.send("POST", index_path(self.plan.index or "_all", "_pit"), None, params)
        if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("id"):
            self.pit = {"id": answer.body["id"], "keep_alive": PIT_KEEP_ALIVE}
            self.opened = True
        elif answer.status in (400, 404) and isinstance(answer.body, dict) and "error" in answer.body:
            err = answer.body["error"]
            if isinstance(err, dict) and err.get("type") in ("index_not_found_exception",):
                raise UpstreamError(answer.status, answer.body)
        # Otherwise (no point in time allowed): run without one; ties then keep first-seen order.

    async def close_pit(self) -> None:
        if self.opened and self.pit is not None:
            try:
                await self.caller.send("DELETE", "/_pit", {"id": self.pit["id"]})
            except EsError:
                log.warning("could not close a point in time")

    async def search(self, body: dict[str, Any], params: Mapping[str, str] | None = None) -> Answer:
        body = dict(body)
        if self.pit is not None:
            body["pit"] = self.pit
            answer = await self.caller.send("POST", "/_search", body, dict(params or {}))
            if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("pit_id"):
                self.pit = {**self.pit, "id": answer.body["pit_id"]}
            return answer
        merged = dict(params or {})
        merged.update({k: v for k, v in self.plan.params.items() if k in INDEX_PARAMS})
        return await self.caller.send("POST", index_path(self.plan.index, "_search"), body, merged)

    async def execute(self, node: Retriever, size: int, inherited: list[Any]) -> tuple[list[Ranked], Any]:
        if node.kind in ("standard", "knn"):
            return await self._leaf(node, size, inherited)
        filters = [*inherited, *node.filters]
        if node.kind == "rrf":
            results = await asyncio.gather(*(self.execute(c, node.window, filters) for c in node.children))
            fused = fuse([r for r, _ in results], node.rank_constant, node.window)
            if node.min_score is not None:
                fused = [d for d in fused if d.score >= node.min_score]
            union = {"bool": {"should": [u for _, u in results]}}
            return fused[:size], union
        if node.kind == "text_similarity_reranker":
            child, union = await self.execute(node.children[0], node.window, filters)
            texts = await self._field_texts(child, node.rerank_field or "")
            try:
                reranked = await rerank(self.service.endpoints, node.inference_id or DEFAULT_RERANK_ID,
                                        node.inference_text or "", child, texts, rank_window_size=node.window,
                                        min_score=node.min_score, timeout_s=self.service.timeout_s)
            except EsError as err:
                if not node.allow_rerank_failures:
                    raise
                log.warning("reranking with [%s] failed, returning the first-stage hits: %s",
                            node.inference_id, err.reason)
                reranked = list(child)
            return reranked[:size], union
        raise parsing_error(f"unknown retriever [{node.kind}]")

    async def _leaf(self, node: Retriever, size: int, inherited: list[Any]) -> tuple[list[Ranked], Any]:
        body: dict[str, Any] = {"size": size, "_source": False, "track_total_hits": False}
        filters = [*inherited, *node.filters]
        if node.kind == "standard":
            query = node.query if node.query is not None else {"match_all": {}}
            if filters:
                query = {"bool": {"must": query, "filter": filters}}
            body["query"] = query
            body.update({k: v for k, v in node.options.items()})
            union = query
        else:
            sections = []
            for section in node.knn:
                section = dict(section)
                if inherited:
                    section["filter"] = [*_listify(section.get("filter")), *inherited]
                sections.append(section)
            body["knn"] = sections
            if node.min_score is not None:
                body["min_score"] = node.min_score
            union = None
        sort = _listify(body.get("sort")) or ["_score"]
        if self.pit is not None:
            sort = [*sort, {"_shard_doc": "asc"}]
        body["sort"] = sort
        answer = await self.search(body)
        hits = (answer.ok().get("hits") or {}).get("hits") or []
        ranked = []
        for i, hit in enumerate(hits):
            sort_values = hit.get("sort") or []
            shard_doc = sort_values[-1] if self.pit is not None and sort_values else None
            ranked.append(Ranked(hit["_index"], hit["_id"], float(hit.get("_score") or 0.0),
                                 shard_doc if isinstance(shard_doc, int) else None, hit.get("_routing"), i))
        if union is None:
            union = _docs_query(ranked)
        return ranked, union

    async def _field_texts(self, docs: list[Ranked], field_name: str) -> list[str]:
        if not docs:
            return []
        entries = []
        for doc in docs:
            entry: dict[str, Any] = {"_index": doc.index, "_id": doc.id, "_source": {"includes": [field_name]}}
            if doc.routing is not None:
                entry["routing"] = doc.routing
            entries.append(entry)
        found = (await self.caller.send("POST", "/_mget", {"docs": entries})).ok().get("docs") or []
        texts = []
        for doc in found:
            value = get_path(doc.get("_source") or {}, field_name) if isinstance(doc, dict) else MISSING
            if isinstance(value, list):
                value = value[0] if value else None
            texts.append("" if value is MISSING or value is None else str(value))
        return texts


__all__ = ["Caller", "Capabilities", "IndexCatalog", "Plan", "SemanticSearch", "UpstreamError", "index_path"]
