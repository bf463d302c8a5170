"""The retriever tree of a search body, its leaf queries rewritten at any depth: run natively by
the node (:meth:`Retriever.to_json`) or here (:mod:`.compound`). The parameters of the fusing,
pinning, rescoring and diversifying retrievers are read by :mod:`.retriever_params`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import EsError, action_request_validation, illegal_argument
from ...es.node import Features
from ..layout import INFERENCE_ROOT
from ..queries.clauses import listify
from ..queries.errors import parsing_error
from ..queries.rewriter import QueryRewriter
from ..rerank import DEFAULT_RERANK_ID
from ..rrf import DEFAULT_RANK_CONSTANT, DEFAULT_RANK_WINDOW_SIZE
from .retriever_params import chunk_rescorer_config, fused_components, single_child_params


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
    # rrf / linear: per child weight, normalizer and ``_name``; the ``{retriever, ...}`` wrapper
    # each child came in (None for a bare retriever).
    weights: list[float] = field(default_factory=list)
    normalizers: list[str] = field(default_factory=list)
    names: list[str | None] = field(default_factory=list)
    wrappers: list[dict[str, Any] | None] = field(default_factory=list)
    # pinned: (index or None, id) pinned first, in order.
    pinned: list[tuple[str | None, str]] = field(default_factory=list)
    # rescorer: the rescore sections (queries rewritten).
    rescore: list[dict[str, Any]] = field(default_factory=list)
    # diversify: field, lambda, size, query_vector.
    diversify: dict[str, Any] = field(default_factory=dict)
    # text_similarity_reranker.chunk_rescorer: {size, chunking_settings} or None.
    chunk_rescorer: dict[str, Any] | None = None

    @property
    def compound(self) -> bool:
        return self.kind in COMPOUND

    def add_filter(self, query: dict[str, Any]) -> None:
        if self.kind == "knn":
            self.knn = [{**s, "filter": [*listify(s.get("filter")), query]} for s in self.knn]
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
        if self.kind in ("rrf", "linear") and "retrievers" in spec:
            spec["retrievers"] = [c.to_json() if w is None else {**w, "retriever": c.to_json()}
                                  for c, w in zip(self.children, self.wrappers, strict=True)]
        elif self.children and "retriever" in spec:
            spec["retriever"] = self.children[0].to_json()
        if self.rescore:
            spec["rescore"] = self.rescore
        if self.filters:
            spec["filter"] = self.filters
        return {self.kind: spec}


def section_as_query(section: dict[str, Any]) -> dict[str, Any]:
    """A top-level knn section as a query (nested when it searches chunk embeddings)."""
    body = dict(section)
    body.pop("inner_hits", None)
    path = body.get("field", "")
    if isinstance(path, str) and path.startswith(INFERENCE_ROOT + ".") and path.endswith(".chunks.embeddings"):
        return {"nested": {"path": path[: -len(".embeddings")], "query": {"knn": body}, "score_mode": "max"}}
    return {"knn": body}


def int_param(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise parsing_error(f"[{name}] must be an integer")
    try:
        return int(value)
    except ValueError:
        raise parsing_error(f"[{name}] must be an integer") from None


COMPOUND = ("rrf", "linear", "text_similarity_reranker", "pinned", "rule", "rescorer", "diversify")


async def build_retriever(value: Any, rw: QueryRewriter, features: Features | None = None) -> Retriever:
    features = features or Features((9, 5, 0))
    if not isinstance(value, dict) or len(value) != 1:
        raise parsing_error("retriever malformed, must have a single retriever type")
    (kind, spec), = value.items()
    if not isinstance(spec, dict):
        raise parsing_error(f"[{kind}] retriever malformed, expected an object")
    node = Retriever(kind, dict(spec))
    node.filters = list(await rw.rewrite_each(listify(spec.get("filter"))))
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
    elif kind in ("rrf", "linear"):
        node.window = int_param(spec.get("rank_window_size"), "rank_window_size", DEFAULT_RANK_WINDOW_SIZE)
        components = await fused_components(node, spec, rw, features)
        node.children = await _build_children([c for c, _ in components], rw, node.window, features)
        node.names = [child.spec.get("_name") if isinstance(child.spec.get("_name"), str) else None
                      for child in node.children]
    if kind == "linear" and node.min_score is not None and node.min_score < 0:
        raise illegal_argument(f"[min_score] must be greater than or equal to 0, was: [{spec['min_score']}]")
    if kind == "rrf":
        node.rank_constant = int_param(spec.get("rank_constant"), "rank_constant", DEFAULT_RANK_CONSTANT)
        if node.rank_constant < 1:
            raise illegal_argument("[rank_constant] must be greater than or equal to [1] for [rrf]")
    elif kind == "text_similarity_reranker":
        missing = [k for k in ("retriever", "inference_text", "field") if spec.get(k) is None]
        if missing:
            raise EsError(400, "x_content_parse_exception",
                          f"[text_similarity_reranker] Required [{', '.join(missing)}]")
        node.window = int_param(spec.get("rank_window_size"), "rank_window_size", DEFAULT_RANK_WINDOW_SIZE)
        node.children = await _build_children([spec["retriever"]], rw, node.window, features)
        node.chunk_rescorer = chunk_rescorer_config(spec, features)
        node.rerank_field = str(spec["field"])
        node.inference_id = str(spec.get("inference_id") or DEFAULT_RERANK_ID)
        node.inference_text = str(spec["inference_text"])
        allow = spec.get("allow_rerank_failures", False)
        if not isinstance(allow, bool):
            raise parsing_error("[text_similarity_reranker] failed to parse field [allow_rerank_failures]")
        node.allow_rerank_failures = allow
    elif kind in ("pinned", "rule", "rescorer", "diversify"):
        node.window = int_param(spec.get("rank_window_size"), "rank_window_size", DEFAULT_RANK_WINDOW_SIZE)
        if not isinstance(spec.get("retriever"), dict):
            raise EsError(400, "x_content_parse_exception", f"[{kind}] Required [retriever]")
        node.children = await _build_children([spec["retriever"]], rw, node.window, features)
        await single_child_params(node, spec, rw)
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


async def _build_children(children: list[Any], rw: QueryRewriter, window: int,
                          features: Features) -> list[Retriever]:
    """Child retrievers run as searches of ``window`` hits: their semantic queries are built
    for that size (one at a time, as the size is the rewriter's)."""
    saved, rw.ctx.size = rw.ctx.size, window
    try:
        return [await build_retriever(child, rw, features) for child in children]
    finally:
        rw.ctx.size = saved
