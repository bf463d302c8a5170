"""``_field_caps`` over indices with semantic_text fields, answered as Elasticsearch answers it.

Elasticsearch reports a semantic_text field in the ``text`` family (``familyTypeName``):
searchable, not aggregatable; with ``include_empty_fields=false`` only once it holds a value.
The sidecar's layout (:mod:`sidecar.semantic.layout`) maps the field as a disabled object and
keeps its chunks under :data:`~sidecar.semantic.layout.INFERENCE_ROOT`; neither may show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .layout import INFERENCE_ROOT, embeddings_path
from .metadata import IndexSemantics

# What Elasticsearch reports for a semantic_text field.
TEXT_CAPS = {"type": "text", "metadata_field": False, "searchable": True, "aggregatable": False}


def fields_param(fields: str | None) -> str | None:
    """The ``fields`` to ask the node for: the user's, plus the chunk embeddings that say whether
    a semantic_text field holds values."""
    if not fields:
        return fields
    return f"{fields},{INFERENCE_ROOT}.*"


def _matches(name: str, patterns: Iterable[str]) -> bool:
    from fnmatch import fnmatchcase

    return any(fnmatchcase(name, p) for p in patterns)


def rewrite(body: Any, semantics: Mapping[str, IndexSemantics], patterns: list[str],
            include_empty: bool) -> Any:
    """A node's ``_field_caps`` answer with semantic_text fields shown as Elasticsearch shows
    them and the sidecar's internal fields taken out."""
    if not isinstance(body, dict) or not isinstance(body.get("fields"), dict):
        return body
    fields: dict[str, Any] = body["fields"]
    # semantic field -> indices (among those answering) where it is semantic_text
    where: dict[str, set[str]] = {}
    for index, sem in semantics.items():
        for name in sem.fields:
            where.setdefault(name, set()).add(index)
    with_values = {name for name in where if embeddings_path(name) in fields}
    internal = {k: fields.pop(k) for k in [k for k in fields if k == INFERENCE_ROOT or k.startswith(INFERENCE_ROOT + ".")]}
    # The chunks as Elasticsearch names them: ``<field>.inference``, ``<field>.inference.chunks``
    # and ``<field>.inference.chunks.embeddings``.
    for name in where:
        for suffix in ("", ".chunks", ".chunks.embeddings"):
            found = internal.get(f"{INFERENCE_ROOT}.{name}{suffix}")
            shown = f"{name}.inference{suffix}"
            if found is not None and _matches(shown, patterns):
                fields[shown] = found
    all_indices = body.get("indices") or []
    for name, indices in where.items():
        if not _matches(name, patterns):
            continue
        # What the node reports for the field in the semantic indices is the sidecar's own
        # mapping of the value (a disabled object, or a keyword carrying multi-fields).
        others = _elsewhere(fields.get(name) or {}, indices, all_indices)
        if not include_empty and name not in with_values:
            if others:
                fields[name] = _single(others)
            else:
                fields.pop(name, None)
            continue
        fields[name] = _merge_text(others, indices) if others else {"text": dict(TEXT_CAPS)}
    return body


def _elsewhere(entries: dict[str, Any], indices: set[str], all_indices: list[str]) -> dict[str, Any]:
    """The type entries of a field in the indices where it is not semantic_text."""
    out = {}
    for type_name, entry in entries.items():
        listed = [i for i in (entry.get("indices") or all_indices) if i not in indices]
        if not listed:
            continue
        kept = {**entry, "indices": listed}
        for flag in ("searchable", "aggregatable"):
            key = f"non_{flag}_indices"
            if key in kept:
                rest = [i for i in kept[key] if i not in indices]
                kept.pop(key)
                if rest and len(rest) < len(listed):
                    kept[key] = rest
                kept[flag] = not rest if len(rest) < len(listed) else False
        out[type_name] = kept
    return out


def _merge_text(others: dict[str, Any], indices: set[str]) -> dict[str, Any]:
    """The field is semantic_text in some indices and of other types elsewhere."""
    out = {t: dict(e) for t, e in others.items()}
    text = out.get("text")
    if text is None:
        out["text"] = {**TEXT_CAPS, "indices": sorted(indices)}
    elif "indices" in text:
        text["indices"] = sorted(set(text["indices"]) | indices)
    return _single(out)


def _single(entries: dict[str, Any]) -> dict[str, Any]:
    """A field of one type everywhere lists no ``indices`` (as Elasticsearch answers)."""
    if len(entries) == 1:
        next(iter(entries.values())).pop("indices", None)
    return entries
