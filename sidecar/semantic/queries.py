"""Query DSL rewriting: the inference queries Elasticsearch's inference plugin adds, turned
into queries every node runs.

* ``semantic`` on a ``semantic_text`` field embeds the query text once per inference endpoint
  (the field's ``search_inference_id``, else its ``inference_id``) and becomes the query
  Elasticsearch builds itself: a ``nested`` query (``score_mode: max``) over the field's chunks
  holding a ``knn`` query (dense) or a weighted-token query (sparse), carrying the ``boost`` and
  ``_name``. Indices whose fields use different endpoints each get their own clause, filtered by
  ``_index``; indices without the field match nothing, and a field of another type is an error.
* ``match``, ``knn`` and ``sparse_vector`` naming a semantic_text field are rewritten as
  Elasticsearch 8.18+ rewrites them.
* ``sparse_vector`` (``inference_id`` + ``query`` or ``query_vector``), ``text_expansion`` and
  ``weighted_tokens`` on ``sparse_vector`` fields become a ``bool`` of ``term`` queries boosted by
  the token weights (``minimum_should_match: 1``): Lucene builds exactly this query for them, so
  the score is Σ weight·value as in Elasticsearch. When Elasticsearch would prune tokens
  (``prune``, ``pruning_config``, or its default for indices created on 8.19+/9.1+) the decision
  needs the shard's term statistics, so the query is left to the node's own ``sparse_vector``
  query with the computed ``query_vector`` where the node has it.
* ``query_vector_builder.text_embedding`` becomes ``query_vector``.

The rewriter is async (embedding needs inference) and plain: it takes and returns JSON-like
Python values. Every semantic leaf it builds is also recorded (:attr:`QueryRewriter.leaves`) so
the semantic highlighter can score chunks against the same query embeddings.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import EsError, illegal_argument, timeout
from ..protocol.service import InputType, TaskType
from .layout import chunks_path, embeddings_path
from .metadata import IndexSemantics, SemanticField
from .query_cache import DENSE, SPARSE, QueryEmbedding, QueryEmbeddingCache

DEFAULT_K = 10
TEXT_EXPANSION_RESULT = "text_expansion_result"
TEXT_EMBEDDING_RESULT = "text_embedding_result"
# Index versions from which a sparse_vector query prunes tokens unless told otherwise
# (IndexVersions.SPARSE_VECTOR_PRUNING_INDEX_OPTIONS_SUPPORT[_BACKPORT_8_X]).
PRUNING_DEFAULT_8X = (8_535_0_00, 9_000_0_00)
PRUNING_DEFAULT_9X = 9_031_0_00
# What makes a request worth parsing at all (anything else passes through untouched).
KEYWORDS = (b"semantic", b"sparse_vector", b"text_expansion", b"weighted_tokens", b"query_vector_builder",
            b"retriever", b"highlight")


# -- errors as Elasticsearch reports them ---------------------------------------------------------


class ShardFailure(EsError):
    """A failure Elasticsearch raises while rewriting the query on the shards of some indices.
    The rewriter records it (those indices' shards fail, the others answer, as in
    Elasticsearch); when every index fails, the search fails with
    ``search_phase_execution_exception`` ("all shards failed")."""

    def __init__(self, indices: Iterable[str], type_: str, reason: str) -> None:
        super().__init__(400, "search_phase_execution_exception", "all shards failed")
        self.cause = {"type": type_, "reason": reason}
        self.failures = {index: dict(self.cause) for index in sorted(set(indices))}

    @classmethod
    def of(cls, failures: dict[str, dict[str, Any]]) -> ShardFailure:
        first = next(iter(failures.values()))
        err = cls([], first["type"], first["reason"])
        err.failures = dict(sorted(failures.items()))
        return err

    def to_body(self) -> dict[str, Any]:
        failed = [{"shard": 0, "index": index, "reason": cause} for index, cause in self.failures.items()]
        causes: list[dict[str, Any]] = []
        for cause in self.failures.values():
            if cause not in causes:
                causes.append(cause)
        return {
            "error": {
                "root_cause": causes,
                "type": self.type,
                "reason": self.reason,
                "phase": "query",
                "grouped": True,
                "failed_shards": failed,
            },
            "status": self.status,
        }


def parsing_error(reason: str) -> EsError:
    return EsError(400, "parsing_exception", reason)


# -- what the rewriter needs to know ------------------------------------------------------------


@dataclass
class IndexInfo:
    name: str
    version_created: int = 0
    semantics: IndexSemantics | None = None
    shards: int = 1

    def semantic_field(self, name: str) -> SemanticField | None:
        return self.semantics.fields.get(name) if self.semantics is not None else None


@dataclass
class SemanticLeaf:
    """A query embedding applied to a semantic_text field in some indices (kept for highlighting)."""

    field: str
    indices: frozenset[str]
    embedding: QueryEmbedding | None  # None: match_all (highlight every chunk)


class Embedder:
    """Embeds query texts with inference endpoints, through the query cache."""

    def __init__(self, endpoints: Any, cache: QueryEmbeddingCache, timeout_s: float | None = 30.0) -> None:
        self.endpoints = endpoints  # sidecar.endpoints.manager.InferenceEndpoints
        self.cache = cache
        self.timeout_s = timeout_s

    async def embed(self, inference_id: str, text: str, wanted: TaskType | None = None) -> QueryEmbedding:
        """``text`` embedded by ``inference_id``. ``wanted`` restricts the endpoint's task type
        (the caller turns a mismatch into its own error); None accepts either embedding task."""
        endpoint = await self.endpoints.resolve(inference_id)
        task = endpoint.task_type
        if task not in (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING) or (wanted is not None and task != wanted):
            raise _WrongTask(endpoint.inference_id, task)
        service = self.endpoints.services.get(endpoint.service)
        kind = DENSE if task is TaskType.TEXT_EMBEDDING else SPARSE

        async def compute() -> QueryEmbedding:
            if kind == DENSE:
                result = await asyncio.wait_for(
                    service.embed(endpoint, [text], InputType.SEARCH, endpoint.task_settings), self.timeout_s)
                vector = result.vectors[0]
                values = vector.tolist() if hasattr(vector, "tolist") else list(vector)
                return QueryEmbedding(endpoint.inference_id, DENSE, vector=tuple(values),
                                      element_type=result.element_type)
            [sparse] = await asyncio.wait_for(
                service.sparse_embed(endpoint, [text], InputType.SEARCH, endpoint.task_settings), self.timeout_s)
            return QueryEmbedding(endpoint.inference_id, SPARSE,
                                  tokens=tuple((str(t), float(w)) for t, w in sparse.tokens.items()))

        try:
            return await self.cache.get(endpoint, kind, text, compute)
        except TimeoutError:
            raise timeout(f"Request timed out waiting to be sent after [{self.timeout_s:g}s]") from None


class _WrongTask(Exception):
    def __init__(self, inference_id: str, task: TaskType) -> None:
        super().__init__(inference_id)
        self.inference_id = inference_id
        self.task = task

    @property
    def result_name(self) -> str:
        return {TaskType.TEXT_EMBEDDING: TEXT_EMBEDDING_RESULT,
                TaskType.SPARSE_EMBEDDING: TEXT_EXPANSION_RESULT,
                TaskType.RERANK: "ranked_docs"}.get(self.task, self.task.value)


FieldTypes = Callable[[str, list[str]], Awaitable[dict[str, dict[str, Any] | None]]]


@dataclass
class RewriteContext:
    indices: dict[str, IndexInfo]
    embedder: Embedder
    # (field, indices) -> {index: leaf mapping of the field or None}
    field_types: FieldTypes
    # The request's explicit size (k of the knn a semantic query builds), if any.
    size: int | None = None
    # Whether the node runs the sparse_vector query itself (pruning needs shard statistics).
    native_sparse: bool = True


# -- small helpers -----------------------------------------------------------------------------


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _decorate(query: dict[str, Any], boost: Any, name: Any) -> dict[str, Any]:
    """Put ``boost``/``_name`` on a single-key query body."""
    (kind, body), = query.items()
    if boost is not None and boost != 1 and boost != 1.0:
        body["boost"] = boost
    if name is not None:
        body["_name"] = name
    return query


def terms_query(field_path: str, tokens: Iterable[tuple[str, float]], boost: Any = None, name: Any = None) -> dict:
    """The query Lucene runs for weighted tokens without pruning: SHOULD clauses of boosted
    feature-term queries, at least one matching. Score = Σ weight · stored value."""
    should = [{"term": {field_path: {"value": token, "boost": weight}}} for token, weight in tokens]
    if not should:
        return _decorate({"match_none": {}}, None, name)
    return _decorate({"bool": {"should": should, "minimum_should_match": 1}}, boost, name)


def index_filtered(query: dict[str, Any], indices: Iterable[str]) -> dict[str, Any]:
    return {"bool": {"must": query, "filter": {"terms": {"_index": sorted(indices)}}}}


def combine_per_index(clauses: list[tuple[frozenset[str], dict[str, Any]]], all_indices: Iterable[str],
                      name: Any = None) -> dict[str, Any]:
    """One clause when it covers every targeted index, else a ``bool.should`` of clauses
    each restricted to its indices (a document matches at most one, so scores are kept)."""
    if not clauses:
        return _decorate({"match_none": {}}, None, name)
    everything = frozenset(all_indices)
    if len(clauses) == 1 and clauses[0][0] >= everything:
        return clauses[0][1]
    return {"bool": {"should": [index_filtered(q, idx) for idx, q in clauses]}}


def default_pruning(version_created: int) -> bool:
    low, high = PRUNING_DEFAULT_8X
    return low <= version_created < high or version_created >= PRUNING_DEFAULT_9X


def parse_pruning_config(value: Any) -> dict[str, Any]:
    """Validate ``pruning_config`` as ``TokenPruningConfig`` does; returns it with defaults."""
    if not isinstance(value, dict):
        raise parsing_error("[pruning_config] should be an object")
    known = ("tokens_freq_ratio_threshold", "tokens_weight_threshold", "only_score_pruned_tokens")
    for key in value:
        if key not in known:
            raise parsing_error(f"[pruning_config] unknown token [{key}]")
    ratio = value.get("tokens_freq_ratio_threshold", 5)
    weight = value.get("tokens_weight_threshold", 0.4)
    try:
        ratio = int(ratio)
        weight = float(weight)
    except (TypeError, ValueError):
        raise parsing_error("[pruning_config] has an invalid value") from None
    if ratio < 1 or ratio > 100:
        raise illegal_argument(f"[tokens_freq_ratio_threshold] must be between [1] and [100], got {float(ratio)}")
    if weight < 0 or weight > 1:
        raise illegal_argument("[tokens_weight_threshold] must be between 0 and 1")
    return {"tokens_freq_ratio_threshold": ratio, "tokens_weight_threshold": weight,
            "only_score_pruned_tokens": bool(value.get("only_score_pruned_tokens", False))}


def check_spec(kind: str, spec: dict[str, Any], allowed: Iterable[str], required: Iterable[str] = (), *,
               unknown: str = "[{kind}] unknown field [{key}]",
               missing: str = "[{kind}] requires a [{key}] value") -> None:
    allowed = tuple(allowed)
    for key in spec:
        if key not in allowed:
            raise parsing_error(unknown.format(kind=kind, key=key))
    for key in required:
        if spec.get(key) is None:
            raise illegal_argument(missing.format(kind=kind, key=key))


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise parsing_error(f"[{what}] must be a string")


# -- the rewriter --------------------------------------------------------------------------------

_CHILD_KEYS: dict[str, tuple[str, ...]] = {
    "bool": ("must", "should", "filter", "must_not"),
    "dis_max": ("queries",),
    "constant_score": ("filter",),
    "boosting": ("positive", "negative"),
    "script_score": ("query",),
    "nested": ("query",),
    "has_child": ("query",),
    "has_parent": ("query",),
    "pinned": ("organic",),
    "rule": ("organic",),
}


class QueryRewriter:
    """Rewrites queries for one request. :attr:`leaves` collects every semantic leaf built."""

    def __init__(self, ctx: RewriteContext) -> None:
        self.ctx = ctx
        self.leaves: list[SemanticLeaf] = []
        # index -> the failure Elasticsearch would report for its shards
        self.failures: dict[str, dict[str, Any]] = {}
        self.changed = False
        self._handlers: dict[str, Callable[[Any], Awaitable[dict[str, Any]]]] = {
            "semantic": self._semantic,
            "sparse_vector": self._sparse_vector,
            "text_expansion": self._text_expansion,
            "weighted_tokens": self._weighted_tokens,
            "match": self._match,
            "knn": self._knn_query,
            "function_score": self._function_score,
        }

    @property
    def all_indices(self) -> list[str]:
        return list(self.ctx.indices)

    def record(self, failure: ShardFailure) -> None:
        for index, cause in failure.failures.items():
            self.failures.setdefault(index, cause)

    # -- walking ---------------------------------------------------------------------------
    async def query(self, query: Any) -> Any:
        if not isinstance(query, dict) or len(query) != 1:
            return query
        (kind, body), = query.items()
        handler = self._handlers.get(kind)
        if handler is not None:
            return await handler(body)
        keys = _CHILD_KEYS.get(kind)
        if keys is None or not isinstance(body, dict):
            return query
        out = dict(body)
        for key in keys:
            if key in out:
                out[key] = await self.rewrite_each(out[key])
        return {kind: out}

    async def rewrite_each(self, value: Any) -> Any:
        if isinstance(value, list):
            return list(await asyncio.gather(*(self.query(v) for v in value)))
        return await self.query(value)

    async def _function_score(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            return {"function_score": body}
        out = dict(body)
        if "query" in out:
            out["query"] = await self.query(out["query"])
        if isinstance(out.get("functions"), list):
            functions = []
            for function in out["functions"]:
                if isinstance(function, dict) and "filter" in function:
                    function = {**function, "filter": await self.query(function["filter"])}
                functions.append(function)
            out["functions"] = functions
        return {"function_score": out}

    # -- per-index bookkeeping ---------------------------------------------------------------
    def split(self, field_name: str) -> tuple[dict[str, list[tuple[str, SemanticField]]], list[str]]:
        """Indices where ``field_name`` is semantic_text grouped by the endpoint that embeds its
        queries, and the other indices."""
        groups: dict[str, list[tuple[str, SemanticField]]] = {}
        others: list[str] = []
        for name, info in self.ctx.indices.items():
            fld = info.semantic_field(field_name)
            if fld is None:
                others.append(name)
            else:
                groups.setdefault(fld.query_inference_id, []).append((name, fld))
        return groups, others

    def indexed_groups(self, field_name: str, task_type: str, query_name: str
                       ) -> list[tuple[str, frozenset[str], SemanticField]]:
        """(endpoint, indices, field) for the indices where ``field_name`` is semantic_text with
        documents indexed; a field whose model does not fit the query is a shard failure."""
        groups, _ = self.split(field_name)
        out = []
        for inference_id, members in groups.items():
            indices = frozenset(i for i, f in members if f.model_settings)
            if not indices:
                continue
            fld = members[0][1]
            actual = (fld.model_settings or {}).get("task_type")
            if actual != task_type:
                self.record(ShardFailure(indices, "illegal_argument_exception",
                                         f"[{query_name}] queries are not supported on field [{fld.name}]: it is "
                                         f"a [semantic_text] field using a [{actual}] model"))
                continue
            out.append((inference_id, indices, fld))
        return out

    async def _check_not_semantic(self, field_name: str, indices: list[str], query_name: str) -> None:
        """Elasticsearch's error for a semantic query on a field of another type."""
        if not indices:
            return
        types = await self.ctx.field_types(field_name, indices)
        bad = {index: mapping for index, mapping in types.items() if mapping is not None}
        for index, mapping in bad.items():
            self.record(ShardFailure([index], "illegal_argument_exception",
                                     f"Field [{field_name}] of type [{mapping.get('type', 'object')}] does not "
                                     f"support {query_name} queries"))

    async def _embed_groups(self, groups: dict[str, list[tuple[str, SemanticField]]], text: str,
                            field_name: str) -> dict[str, QueryEmbedding | None]:
        """Embed ``text`` once per endpoint that has indexed documents to search."""
        wanted = [inference_id for inference_id, members in groups.items()
                  if any(fld.model_settings for _, fld in members)]
        results = await asyncio.gather(*(self._embed_for_field(i, text, groups[i]) for i in wanted))
        return dict(zip(wanted, results, strict=True))

    async def _embed_for_field(self, inference_id: str, text: str,
                               members: list[tuple[str, SemanticField]]) -> QueryEmbedding | None:
        try:
            return await self.ctx.embedder.embed(inference_id, text)
        except _WrongTask as wrong:
            fld = members[0][1]
            expected = TEXT_EXPANSION_RESULT if (fld.model_settings or {}).get("task_type") == "sparse_embedding" \
                else TEXT_EMBEDDING_RESULT
            self.record(ShardFailure([i for i, _ in members], "illegal_argument_exception",
                                     _mismatch_message(fld, expected, wrong.result_name)))
            return None

    # -- semantic ----------------------------------------------------------------------------
    async def _semantic(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise parsing_error("[semantic] query malformed, no start_object after query name")
        check_spec("semantic", body, ("field", "query", "boost", "_name", "lenient"), ("field", "query"),
                   unknown="[{kind}] unknown field [{key}]", missing="[{kind}] requires a {key} value")
        field_name = _text(body["field"], "field")
        text = _text(body["query"], "query")
        return await self.semantic(field_name, text, body.get("boost"), body.get("_name"),
                                   lenient=bool(body.get("lenient", False)))

    async def semantic(self, field_name: str, text: str, boost: Any = None, name: Any = None, *,
                       lenient: bool = False, only: Iterable[str] | None = None) -> dict[str, Any]:
        self.changed = True
        groups, others = self.split(field_name)
        scope = self.all_indices
        if only is not None:
            scope = list(only)
            keep = set(only)
            groups = {k: [(i, f) for i, f in v if i in keep] for k, v in groups.items()}
            groups = {k: v for k, v in groups.items() if v}
            others = [i for i in others if i in keep]
        if not lenient:
            await self._check_not_semantic(field_name, others, "semantic")
        embeddings = await self._embed_groups(groups, text, field_name)
        clauses: list[tuple[frozenset[str], dict[str, Any]]] = []
        for inference_id, members in groups.items():
            embedding = embeddings.get(inference_id)
            with_docs = [(index, fld) for index, fld in members if fld.model_settings]
            if embedding is None or not with_docs:
                continue
            # Indices whose fields agree on model settings share one clause.
            by_settings: dict[str, list[tuple[str, SemanticField]]] = {}
            for index, fld in with_docs:
                by_settings.setdefault(repr(sorted((fld.model_settings or {}).items())), []).append((index, fld))
            for same in by_settings.values():
                indices = frozenset(i for i, _ in same)
                try:
                    clauses.append((indices, self._semantic_leaf(same[0][1], embedding, indices, boost, name)))
                except ShardFailure as failure:
                    self.record(failure)
        return combine_per_index(clauses, scope, name)

    def _semantic_leaf(self, fld: SemanticField, embedding: QueryEmbedding, indices: frozenset[str],
                       boost: Any, name: Any) -> dict[str, Any]:
        settings = fld.model_settings or {}
        task = settings.get("task_type")
        if task == "sparse_embedding":
            if embedding.kind != SPARSE:
                raise ShardFailure(indices, "illegal_argument_exception",
                                   _mismatch_message(fld, TEXT_EXPANSION_RESULT, TEXT_EMBEDDING_RESULT))
            child = self.sparse_leaf(embeddings_path(fld.name), embedding.tokens or (), None, None)
        elif task == "text_embedding":
            if embedding.kind != DENSE:
                raise ShardFailure(indices, "illegal_argument_exception",
                                   _mismatch_message(fld, TEXT_EMBEDDING_RESULT, TEXT_EXPANSION_RESULT))
            vector = list(embedding.vector or ())
            dims = len(vector) * (8 if settings.get("element_type") == "bit" else 1)
            if settings.get("dimensions") is not None and dims != settings["dimensions"]:
                raise ShardFailure(indices, "illegal_argument_exception", _dims_message(fld, dims))
            # k = max(size, 10) as Elasticsearch sets it (so size 0 and _count still match).
            knn = {"field": embeddings_path(fld.name), "query_vector": vector,
                   "k": max(self.ctx.size or DEFAULT_K, DEFAULT_K)}
            child = {"knn": knn}
        else:
            raise ShardFailure(indices, "illegal_state_exception",
                               f"Field [{fld.name}] is configured to use an inference endpoint with an "
                               f"unsupported task type [{task}]")
        self.leaves.append(SemanticLeaf(fld.name, indices, embedding))
        nested = {"path": chunks_path(fld.name), "query": child, "score_mode": "max", "ignore_unmapped": True}
        return _decorate({"nested": nested}, boost, name)

    # -- match on semantic_text ----------------------------------------------------------------
    async def _match(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or len(body) != 1:
            return {"match": body}
        (field_name, spec), = body.items()
        groups, others = self.split(field_name)
        if not groups:
            return {"match": body}
        if isinstance(spec, dict):
            text, boost, name = spec.get("query"), spec.get("boost"), spec.get("_name")
        else:
            text, boost, name = spec, None, None
        text = _text(text, "query")
        if not others:
            return await self.semantic(field_name, text, boost, name)
        semantic_indices = [i for members in groups.values() for i, _ in members]
        semantic = await self.semantic(field_name, text, boost, name, lenient=True, only=semantic_indices)
        return {"bool": {"should": [index_filtered(semantic, semantic_indices),
                                    index_filtered({"match": body}, others)]}}

    # -- knn -------------------------------------------------------------------------------------
    async def vector_from_builder(self, builder: Any, default_model: str | None = None) -> list[Any]:
        if not isinstance(builder, dict) or list(builder) != ["text_embedding"]:
            raise parsing_error("[query_vector_builder] unknown query vector builder; expected [text_embedding]")
        spec = builder["text_embedding"]
        if not isinstance(spec, dict):
            raise parsing_error("[text_embedding] must be an object")
        model_id = spec.get("model_id") or default_model
        if model_id is None:
            raise illegal_argument("[model_id] must not be null.")
        embedding = await self._model_embedding(model_id, _text(spec.get("model_text"), "model_text"),
                                                TaskType.TEXT_EMBEDDING)
        self.changed = True
        return list(embedding.vector or ())

    async def knn_body(self, knn: dict[str, Any], *, section: bool = False) -> list[dict[str, Any]]:
        """A knn search section or query body rewritten; a field that is semantic_text in some
        indices becomes the knn over its chunk embeddings there (one body per endpoint)."""
        if not isinstance(knn, dict):
            return [knn]
        knn = dict(knn)
        if "filter" in knn:
            knn["filter"] = await self.rewrite_each(knn["filter"])
        if "query_vector_builder" in knn and knn.get("query_vector") is not None:
            raise illegal_argument("cannot provide both [query_vector_builder] and [query_vector]")
        field_name = knn.get("field")
        groups, others = self.split(field_name) if isinstance(field_name, str) else ({}, self.all_indices)
        if not groups:
            if "query_vector_builder" in knn:
                knn["query_vector"] = await self.vector_from_builder(knn.pop("query_vector_builder"))
            return [knn]
        self.changed = True
        bodies: list[dict[str, Any]] = []
        for inference_id, indices, fld in self.indexed_groups(field_name, "text_embedding", "knn"):
            body = dict(knn)
            body["field"] = embeddings_path(fld.name)
            if "query_vector_builder" in body:
                body["query_vector"] = await self.vector_from_builder(body.pop("query_vector_builder"), inference_id)
            vector = body.get("query_vector")
            if isinstance(vector, list):
                self.leaves.append(SemanticLeaf(fld.name, indices, QueryEmbedding(inference_id, DENSE,
                                                                                  vector=tuple(vector))))
            bodies.append(self._restrict_knn(body, indices, section, fld.name))
        if others:
            rest = dict(knn)
            if "query_vector_builder" in rest:
                rest["query_vector"] = await self.vector_from_builder(rest.pop("query_vector_builder"))
            bodies.append(self._restrict_knn(rest, frozenset(others), section, None))
        return bodies

    def _restrict_knn(self, body: dict[str, Any], indices: frozenset[str], section: bool,
                      semantic_field: str | None) -> dict[str, Any]:
        body = dict(body)
        if not indices >= frozenset(self.all_indices):
            filters = _listify(body.get("filter"))
            body["filter"] = [*filters, {"terms": {"_index": sorted(indices)}}]
        if section or semantic_field is None:
            return body
        boost, name = body.pop("boost", None), body.pop("_name", None)
        nested = {"path": chunks_path(semantic_field), "query": {"knn": body}, "score_mode": "max",
                  "ignore_unmapped": True}
        return _decorate({"nested": nested}, boost, name)

    async def _knn_query(self, body: Any) -> dict[str, Any]:
        bodies = await self.knn_body(body)
        queries = [b if "nested" in b else {"knn": b} for b in bodies]
        if len(queries) == 1:
            return queries[0]
        return {"bool": {"should": queries}}

    async def knn_section(self, knn: Any) -> Any:
        """The top-level ``knn`` search section (an object or a list of them)."""
        sections = knn if isinstance(knn, list) else [knn]
        out: list[Any] = []
        for section in sections:
            out.extend(await self.knn_body(section, section=True))
        if not isinstance(knn, list) and len(out) == 1:
            return out[0]
        return out

    # -- sparse ----------------------------------------------------------------------------------
    def sparse_leaf(self, field_path: str, tokens: Iterable[tuple[str, float]], prune: Any, pruning_config: Any,
                    boost: Any = None, name: Any = None, *, may_prune_by_default: bool = True) -> dict[str, Any]:
        """Weighted tokens on a sparse_vector field. Without pruning: the exact bool-of-terms
        query. With pruning (asked for, or Elasticsearch's default): the node's own query."""
        self.changed = True
        tokens = list(tokens)
        if prune is False or (prune is None and pruning_config is None and not may_prune_by_default):
            return terms_query(field_path, tokens, boost, name)
        if not self.ctx.native_sparse:
            return terms_query(field_path, tokens, boost, name)
        body: dict[str, Any] = {"field": field_path, "query_vector": dict(tokens)}
        if prune is not None:
            body["prune"] = prune
        if pruning_config is not None:
            body["pruning_config"] = pruning_config
        return _decorate({"sparse_vector": body}, boost, name)

    def _prunes_by_default(self, indices: Iterable[str]) -> bool:
        return any(default_pruning(self.ctx.indices[i].version_created) for i in indices if i in self.ctx.indices)

    async def _sparse_tokens(self, inference_id: str, text: str) -> tuple[tuple[str, float], ...]:
        embedding = await self._model_embedding(inference_id, text, TaskType.SPARSE_EMBEDDING)
        return embedding.tokens or ()

    async def _model_embedding(self, model_id: str, text: str, task: TaskType) -> QueryEmbedding:
        """A query embedded by a model named in the query (model_id / inference_id)."""
        try:
            return await self.ctx.embedder.embed(model_id, text, task)
        except _WrongTask as wrong:
            expected = TEXT_EMBEDDING_RESULT if task is TaskType.TEXT_EMBEDDING else TEXT_EXPANSION_RESULT
            raise illegal_argument(f"expected a result of type [{expected}] received [{wrong.result_name}]. "
                                   f"Is [{model_id}] a compatible model?") from None

    async def _sparse_vector(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise parsing_error("[sparse_vector] query malformed, no start_object after query name")
        check_spec("sparse_vector", body, ("field", "query_vector", "inference_id", "query", "prune",
                                            "pruning_config", "boost", "_name"))
        field_name = body.get("field")
        if not isinstance(field_name, str):
            raise illegal_argument("[sparse_vector] requires a [field]")
        vector, inference_id, text = body.get("query_vector"), body.get("inference_id"), body.get("query")
        if (vector is not None and inference_id is not None) or ((vector is None) == (text is None)):
            raise illegal_argument("[sparse_vector] requires one of [query_vector] or [inference_id] for "
                                   "sparse_vector fields")
        prune = body.get("prune")
        config = parse_pruning_config(body["pruning_config"]) if body.get("pruning_config") is not None else None
        boost, name = body.get("boost"), body.get("_name")
        _, others = self.split(field_name)
        clauses: list[tuple[frozenset[str], dict[str, Any]]] = []
        for group_id, indices, fld in self.indexed_groups(field_name, "sparse_embedding", "sparse_vector"):
            tokens = _vector_tokens(vector) if vector is not None else \
                await self._sparse_tokens(inference_id or group_id, _text(text, "query"))
            self.leaves.append(SemanticLeaf(fld.name, indices, QueryEmbedding(group_id, SPARSE, tokens=tuple(tokens))))
            child = self.sparse_leaf(embeddings_path(fld.name), tokens, prune, config,
                                     may_prune_by_default=self._prunes_by_default(indices))
            nested = {"path": chunks_path(fld.name), "query": child, "score_mode": "max", "ignore_unmapped": True}
            clauses.append((indices, _decorate({"nested": nested}, boost, name)))
        if others:
            if vector is not None:
                tokens = _vector_tokens(vector)
            elif inference_id is None:
                raise illegal_argument("inference_id required to perform vector search on query string")
            else:
                tokens = await self._sparse_tokens(inference_id, _text(text, "query"))
            clauses.append((frozenset(others), self.sparse_leaf(
                field_name, tokens, prune, config, boost, name,
                may_prune_by_default=self._prunes_by_default(others))))
        self.changed = True
        return combine_per_index(clauses, self.all_indices, name)

    @staticmethod
    def _single_field(kind: str, body: Any) -> tuple[str, dict[str, Any]]:
        if not isinstance(body, dict) or not body:
            raise parsing_error(f"[{kind}] query malformed, no start_object after query name")
        if len(body) != 1:
            raise parsing_error(f"[{kind}] query doesn't support multiple fields, found [{list(body)[0]}] "
                                f"and [{list(body)[1]}]")
        (field_name, spec), = body.items()
        if not isinstance(spec, dict):
            raise parsing_error(f"[{kind}] query malformed, no start_object after query name")
        return field_name, spec

    async def _text_expansion(self, body: Any) -> dict[str, Any]:
        field_name, spec = self._single_field("text_expansion", body)
        check_spec("text_expansion", spec, ("model_id", "model_text", "pruning_config", "boost", "_name"),
                   ("model_id", "model_text"), unknown="[{kind}] query does not support [{key}]")
        tokens = await self._sparse_tokens(spec["model_id"], _text(spec["model_text"], "model_text"))
        return self._weighted(field_name, tokens, spec)

    async def _weighted_tokens(self, body: Any) -> dict[str, Any]:
        field_name, spec = self._single_field("weighted_tokens", body)
        check_spec("weighted_tokens", spec, ("tokens", "pruning_config", "boost", "_name"))
        raw = spec.get("tokens")
        if isinstance(raw, list):
            merged: dict[str, Any] = {}
            for item in raw:
                if isinstance(item, dict):
                    merged.update(item)
            raw = merged
        if not isinstance(raw, dict) or not raw:
            raise illegal_argument("[weighted_tokens] requires at least one token")
        return self._weighted(field_name, _vector_tokens(raw), spec)

    def _weighted(self, field_name: str, tokens: Iterable[tuple[str, float]], spec: dict[str, Any]) -> dict:
        """text_expansion / weighted_tokens: every token, unless a pruning_config asks for pruning."""
        config = parse_pruning_config(spec["pruning_config"]) if spec.get("pruning_config") is not None else None
        prune = True if config is not None else False
        return self.sparse_leaf(field_name, tokens, prune, config, spec.get("boost"), spec.get("_name"))


def _vector_tokens(vector: Any) -> list[tuple[str, float]]:
    if not isinstance(vector, dict):
        raise parsing_error("[query_vector] must be an object of token weights")
    out = []
    for token, weight in vector.items():
        try:
            out.append((str(token), float(weight)))
        except (TypeError, ValueError):
            raise parsing_error(f"Illegal weight for token: [{token}], expected floating point") from None
    return out


def _advice(fld: SemanticField) -> str:
    if fld.search_inference_id and fld.search_inference_id != fld.inference_id:
        return (f" Is the search inference endpoint [{fld.search_inference_id}] compatible with the inference "
                f"endpoint [{fld.inference_id}]?")
    return f" Has the configuration for inference endpoint [{fld.inference_id}] changed?"


def _mismatch_message(fld: SemanticField, expected: str, got: str) -> str:
    return f"Field [{fld.name}] expected query inference results to be of type [{expected}], got [{got}]." + \
        _advice(fld)


def _dims_message(fld: SemanticField, got: int) -> str:
    expected = (fld.model_settings or {}).get("dimensions")
    return (f"Field [{fld.name}] expected query inference results with {expected} dimensions, got {got} "
            "dimensions." + _advice(fld))


# -- field patterns ---------------------------------------------------------------------------------


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(p == name or ("*" in p and fnmatch.fnmatchcase(name, p)) for p in patterns)


__all__ = [
    "Embedder", "IndexInfo", "KEYWORDS", "QueryRewriter", "RewriteContext", "SemanticLeaf", "ShardFailure",
    "combine_per_index", "default_pruning", "index_filtered", "matches_any", "parse_pruning_config",
    "terms_query",
]
