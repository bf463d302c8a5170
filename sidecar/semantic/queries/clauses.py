"""The query bodies the rewriter builds, and the small checks of the bodies it reads."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from ...errors import illegal_argument
from .errors import parsing_error


def listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def decorate(query: dict[str, Any], boost: Any, name: Any) -> dict[str, Any]:
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
        return decorate({"match_none": {}}, None, name)
    return decorate({"bool": {"should": should, "minimum_should_match": 1}}, boost, name)


def index_filtered(query: dict[str, Any], indices: Iterable[str]) -> dict[str, Any]:
    return {"bool": {"must": query, "filter": {"terms": {"_index": sorted(indices)}}}}


def combine_per_index(clauses: list[tuple[frozenset[str], dict[str, Any]]], all_indices: Iterable[str],
                      name: Any = None) -> dict[str, Any]:
    """One clause when it covers every targeted index, else a ``bool.should`` of clauses
    each restricted to its indices (a document matches at most one, so scores are kept)."""
    if not clauses:
        return decorate({"match_none": {}}, None, name)
    everything = frozenset(all_indices)
    if len(clauses) == 1 and clauses[0][0] >= everything:
        return clauses[0][1]
    return {"bool": {"should": [index_filtered(q, idx) for idx, q in clauses]}}


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


def text_value(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise parsing_error(f"[{what}] must be a string")


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(p == name or ("*" in p and fnmatch.fnmatchcase(name, p)) for p in patterns)
