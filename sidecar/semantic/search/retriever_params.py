"""The parameters of the fusing (``rrf``, ``linear``), pinning (``pinned``), rescoring
(``rescorer``) and diversifying (``diversify``) retrievers and of ``chunk_rescorer``, read and
checked as Elasticsearch reads them, for the node's version."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ...errors import EsError, action_request_validation, illegal_argument, x_content_parse
from ...es.node import Features
from ..queries.clauses import listify
from ..queries.errors import parsing_error
from ..queries.rewriter import QueryRewriter
from .fusion import check_normalizer

if TYPE_CHECKING:
    from .retrievers import Retriever

DEFAULT_RESCORE_WINDOW = 10
DEFAULT_DIVERSIFY_SIZE = 10
_FIELD_BOOST = re.compile(r"^(.*?)(?:\^([0-9]*\.?[0-9]+))?$")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise x_content_parse(f"[{what}] failed to parse field [weight]")
    return float(value)


async def fused_components(node: Retriever, spec: dict[str, Any], rw: QueryRewriter,
                           features: Features) -> list[tuple[Any, dict[str, Any] | None]]:
    """The children of an ``rrf`` or ``linear`` retriever as ``(retriever, wrapper)``; sets the
    node's weights and normalizers."""
    kind = node.kind
    retrievers = spec.get("retrievers")
    query = spec.get("query")
    if retrievers is not None and not isinstance(retrievers, list):
        raise parsing_error(f"[{kind}] failed to parse field [retrievers]")
    if query is not None or spec.get("fields") is not None:
        if not features.retriever_fields_query:
            field = "query" if query is not None else "fields"
            raise x_content_parse(f"[{kind}] unknown field [{field}]")
        if retrievers:
            raise action_request_validation(f"[{kind}] cannot combine [retrievers] and [query]")
        if not isinstance(query, str) or not query:
            raise action_request_validation(f"[{kind}] [query] must be provided when [fields] is specified")
    top = spec.get("normalizer")
    if top is not None:
        if kind != "linear":
            raise x_content_parse(f"[{kind}] unknown field [normalizer]")
        top = _normalizer(top, features)
        if retrievers and not features.linear_default_normalizer:
            raise action_request_validation("[linear] [normalizer] cannot be provided when [retrievers] is specified")
    elif kind == "linear" and query is not None:
        raise action_request_validation("[linear] [normalizer] must be provided when [query] is specified")
    if query is not None:
        return _fields_components(node, query, spec.get("fields"), top or "none", rw)
    if not retrievers:
        raise parsing_error(f"[{kind}] requires [retrievers]")
    out: list[tuple[Any, dict[str, Any] | None]] = []
    for item in retrievers:
        if not isinstance(item, dict) or not item:
            raise parsing_error("retriever component must contain a retriever")
        wrapped = kind == "linear" or "retriever" in item or "weight" in item
        if not wrapped:
            out.append((item, None))
            node.weights.append(1.0)
            node.normalizers.append(top or "none")
            continue
        if kind == "rrf" and not features.rrf_weights:
            raise parsing_error(f"unknown retriever [{next(iter(item))}]")
        allowed = ("retriever", "weight", "normalizer") if kind == "linear" else ("retriever", "weight")
        for key in item:
            if key not in allowed:
                raise parsing_error(f"unknown field [{key}], expected [retriever] or [weight]")
        if "retriever" not in item:
            raise parsing_error("retriever component must contain a retriever")
        weight = 1.0 if item.get("weight") is None else _number(item["weight"], kind)
        if weight < 0:
            reason = "[weight] must be non-negative" + (f", found [{weight}]" if kind == "rrf" else "")
            raise EsError(400, "x_content_parse_exception", f"[{kind}] failed to parse field [retrievers]",
                          caused_by={"type": "illegal_argument_exception", "reason": reason})
        own = item.get("normalizer")
        normalizer = _normalizer(own, features) if own is not None else (top or "none")
        out.append((item["retriever"], {k: v for k, v in item.items() if k != "retriever"}))
        node.weights.append(weight)
        node.normalizers.append(normalizer)
    node.wrappers = [w for _, w in out]
    return out


def _normalizer(name: Any, features: Features) -> str:
    name = check_normalizer(name)
    if name == "l2_norm" and not features.linear_l2_norm:
        raise illegal_argument("Unknown normalizer [l2_norm]")
    return name


def parse_fields(fields: Any) -> list[tuple[str, float]]:
    out = []
    for item in listify(fields) or ["*"]:
        match = _FIELD_BOOST.match(str(item))
        assert match is not None
        out.append((match.group(1), float(match.group(2)) if match.group(2) else 1.0))
    return out


def _fields_components(node: Retriever, query: str, fields: Any, normalizer: str,
                       rw: QueryRewriter) -> list[tuple[Any, dict[str, Any] | None]]:
    """The multi-field shorthand: the lexical fields in one ``multi_match`` child, each
    semantic_text field in a ``match`` child of its own (its boost as the child's weight)."""
    targets = rw.ctx.indices
    if len(targets) > 1:
        raise illegal_argument(f"[{node.kind}] cannot specify [query] when querying multiple indices")
    semantic = {name for info in targets.values() if info.semantics is not None for name in info.semantics.fields}
    parsed = parse_fields(fields)
    if node.kind == "rrf" and any(w != 1.0 for _, w in parsed):
        raise illegal_argument("[rrf] does not support per-field weights in [fields]")
    lexical = [f"{name}^{w:g}" if w != 1.0 else name for name, w in parsed if name not in semantic]
    out: list[tuple[Any, dict[str, Any] | None]] = []
    if lexical:
        out.append(({"standard": {"query": {"multi_match": {"query": query, "fields": lexical}}}}, None))
        node.weights.append(1.0)
        node.normalizers.append(normalizer)
    for name, weight in parsed:
        if name in semantic:
            out.append(({"standard": {"query": {"match": {name: {"query": query}}}}}, None))
            node.weights.append(weight)
            node.normalizers.append(normalizer)
    if not out:
        out.append(({"standard": {"query": {"match_none": {}}}}, None))
        node.weights.append(1.0)
        node.normalizers.append(normalizer)
    node.wrappers = [None] * len(out)
    return out


async def single_child_params(node: Retriever, spec: dict[str, Any], rw: QueryRewriter) -> None:
    kind = node.kind
    if kind == "pinned":
        ids, docs = spec.get("ids"), spec.get("docs")
        if ids is not None and docs is not None:
            raise illegal_argument("Both 'ids' and 'docs' cannot be specified at the same time")
        if ids is not None:
            node.pinned = [(None, str(i)) for i in listify(ids)]
        else:
            for doc in listify(docs):
                if not isinstance(doc, dict) or "_id" not in doc:
                    raise x_content_parse("[pinned] failed to parse field [docs]")
                node.pinned.append((doc.get("_index"), str(doc["_id"])))
        if not node.pinned:
            raise illegal_argument("[pinned] one of [ids] or [docs] must be specified")
    elif kind == "rescorer":
        sections = []
        for section in listify(spec.get("rescore")):
            if not isinstance(section, dict) or not isinstance(section.get("query"), dict):
                raise parsing_error("[rescorer] requires a query rescorer")
            section = {**section, "query": dict(section["query"])}
            _check_rescore(section)
            if "rescore_query" in section["query"]:
                section["query"]["rescore_query"] = await rw.query(section["query"]["rescore_query"])
            sections.append(section)
        if not sections:
            raise EsError(400, "x_content_parse_exception", "[rescorer] Required [rescore]")
        node.rescore = sections
        node.window = max(int(s.get("window_size", DEFAULT_RESCORE_WINDOW)) for s in sections)
    elif kind == "diversify":
        missing = [k for k in ("type", "field") if spec.get(k) is None]
        if missing:
            raise x_content_parse(f"[diversify] Required [{', '.join(missing)}]")
        for key, types in (("type", str), ("field", str), ("size", int), ("lambda", (int, float)),
                           ("query_vector", list)):
            value = spec.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
                raise x_content_parse(f"[diversify] failed to parse field [{key}]")
        vector = spec.get("query_vector")
        if vector is not None and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vector):
            raise x_content_parse("[diversify] failed to parse field [query_vector]")
        lam = spec.get("lambda")
        size = spec.get("size")
        size = min(DEFAULT_DIVERSIFY_SIZE, node.window) if size is None else int(size)
        problems = []
        if size <= 0:
            problems.append(f"[diversify] MMR result diversification [size] of {size} must be greater than zero")
        if size > node.window:
            problems.append(f"[diversify] MMR result diversification [size] of {size} cannot be greater than "
                            f"the [rank_window_size] of {node.window}")
        if not isinstance(lam, (int, float)) or isinstance(lam, bool) or not 0.0 <= lam <= 1.0:
            shown = "null" if lam is None else str(lam)
            problems.append(f"[diversify] MMR result diversification must have a [lambda] between 0.0 and 1.0. "
                            f"The value provided was {shown}")
        if problems:
            raise action_request_validation(*problems)
        if spec.get("type") != "mmr":
            raise illegal_argument(f"Unknown diversification type [{spec.get('type')}]")
        if spec.get("query_vector") is not None and spec.get("query_vector_builder") is not None:
            raise action_request_validation("[diversify] MMR result diversification can have one of [query_vector] "
                                            "or [query_vector_builder], but not both")
        vector = spec.get("query_vector")
        if isinstance(spec.get("query_vector_builder"), dict):
            # The text embedded by the field's own endpoint when the builder names no model.
            field = str(spec.get("field"))
            default = next((info.semantics.fields[field].query_inference_id for info in rw.ctx.indices.values()
                            if info.semantics is not None and field in info.semantics.fields), None)
            vector = await rw.vector_from_builder(spec["query_vector_builder"], default)
        node.diversify = {"field": str(spec.get("field")), "lambda": float(lam), "size": size,
                          "query_vector": vector}


RESCORE_MODES = ("total", "multiply", "avg", "max", "min")


def _check_rescore(section: dict[str, Any]) -> None:
    window = section.get("window_size", DEFAULT_RESCORE_WINDOW)
    if isinstance(window, bool) or not isinstance(window, int):
        raise parsing_error("[rescore] failed to parse field [window_size]")
    if window < 0:
        raise illegal_argument(f"[window_size] must be greater than or equal to 0, was: [{window}]")
    spec = section["query"]
    for key in ("query_weight", "rescore_query_weight"):
        value = spec.get(key, 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise parsing_error(f"[query] failed to parse field [{key}]")
    mode = spec.get("score_mode", "total")
    if mode not in RESCORE_MODES:
        raise illegal_argument(f"illegal score_mode [{mode}]")


def chunk_rescorer_config(spec: dict[str, Any], features: Features) -> dict[str, Any] | None:
    if "chunk_rescorer" not in spec:
        return None
    if not features.chunk_rescorer:
        raise x_content_parse("[text_similarity_reranker] unknown field [chunk_rescorer]")
    config = spec["chunk_rescorer"] or {}
    if not isinstance(config, dict):
        raise x_content_parse("[text_similarity_reranker] failed to parse field [chunk_rescorer]")
    size = config.get("size")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise illegal_argument(f"size must be greater than 0, was: {size}")
    return {"size": size or 1, "chunking_settings": config.get("chunking_settings")}
