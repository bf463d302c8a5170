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
        if not include_empty and name not in with_values:
            _drop_object(fields, name, indices)
            continue
        entries = fields.get(name) or {}
        others = {t: e for t, e in entries.items() if t != "object" or not _only(e, indices, all_indices)}
        if not others:
            fields[name] = {"text": dict(TEXT_CAPS)}
            continue
        merged = _merge_text(others, indices, all_indices)
        fields[name] = merged
    return body


def _only(entry: dict[str, Any], indices: set[str], all_indices: list[str]) -> bool:
    """Whether a type entry belongs to the semantic indices only (the sidecar's disabled object)."""
    listed = entry.get("indices")
    return set(listed or all_indices) <= indices


def _drop_object(fields: dict[str, Any], name: str, indices: set[str]) -> None:
    entries = fields.get(name)
    if not isinstance(entries, dict):
        return
    entries.pop("object", None)
    if not entries:
        del fields[name]


def _merge_text(others: dict[str, Any], indices: set[str], all_indices: list[str]) -> dict[str, Any]:
    """The field is semantic_text in some indices and of other types elsewhere."""
    out = {t: dict(e) for t, e in others.items()}
    if "object" in out:  # an object in other indices: keep only those
        listed = [i for i in out["object"].get("indices") or all_indices if i not in indices]
        out["object"]["indices"] = listed
    text = out.get("text")
    if text is None:
        out["text"] = {**TEXT_CAPS, "indices": sorted(indices)}
    elif "indices" in text:
        text["indices"] = sorted(set(text["indices"]) | indices)
    if len(out) == 1:
        out["text"].pop("indices", None)
    return out
