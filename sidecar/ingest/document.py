"""Documents going through a pipeline, with Elasticsearch's ``IngestDocument`` field rules.

A :class:`DocState` holds what Elasticsearch's ingest document holds: the metadata
(``_index``, ``_id``, ``_routing``, ``_version``, …), the ``_source`` and the ingest
metadata (``_ingest.timestamp`` and, inside ``on_failure`` handlers, the failure fields).

Field access (:func:`get_field`, :func:`has_field`, :func:`set_field`,
:func:`append_field`) follows ``IngestDocument``: dotted paths walk maps and lists
(list elements by index), ``_ingest.`` and ``_source.`` prefixes pick the ingest metadata or
the source, and the error messages are Elasticsearch's own.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

# Metadata keys of an ingest document, and how the simulate API renders a doc that has none.
META_KEYS = ("_index", "_id", "_routing", "_version", "_version_type", "_if_seq_no", "_if_primary_term")
INT_META = ("_version", "_if_seq_no", "_if_primary_term")
# The simulate API fills these when a document leaves them out (ES: MATCH_ANY = -3).
SIMULATE_DEFAULTS = {"_index": "_index", "_id": "_id", "_version": -3}
# Order in which Elasticsearch renders metadata in simulate responses.
_RENDER_ORDER_FULL = ("_routing", "_version_type", "_index", "_if_primary_term", "_id", "_version", "_if_seq_no")
_RENDER_ORDER_SHORT = ("_id", "_index", "_version")

ON_FAILURE_KEYS = ("on_failure_message", "on_failure_processor_type", "on_failure_processor_tag",
                   "on_failure_pipeline")


def ingest_timestamp(now: _dt.datetime | None = None) -> str:
    """``_ingest.timestamp`` as Elasticsearch prints it (ISO-8601, UTC, trailing zeros cut)."""
    now = now or _dt.datetime.now(_dt.UTC)
    text = now.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


@dataclass
class DocState:
    """One document on its way through pipelines (mutated in place by processors)."""

    meta: dict[str, Any]
    source: dict[str, Any]
    ingest: dict[str, Any] = field(default_factory=dict)
    # Indices the document was sent to, for Elasticsearch's index-cycle check.
    index_history: list[str] = field(default_factory=list)
    # Per-processor results, only when a verbose simulation asked for them.
    results: list[dict[str, Any]] | None = None
    # Set when the document was rerouted (the rest of the current pipeline is skipped).
    rerouted: bool = False

    @property
    def index(self) -> str | None:
        return self.meta.get("_index")

    @property
    def id(self) -> str | None:
        return self.meta.get("_id")

    def simulate_doc(self) -> dict[str, Any]:
        """The document as a ``docs[]`` element of a simulate request."""
        doc: dict[str, Any] = {k: v for k, v in self.meta.items() if v is not None}
        doc["_source"] = self.source
        return doc

    def render(self) -> dict[str, Any]:
        """The ``doc`` object of a simulate response (metadata values as strings)."""
        meta = dict(SIMULATE_DEFAULTS)
        meta.update({k: v for k, v in self.meta.items() if v is not None})
        order = _RENDER_ORDER_SHORT if set(meta) <= set(_RENDER_ORDER_SHORT) else _RENDER_ORDER_FULL
        out: dict[str, Any] = {k: str(meta[k]) for k in order if k in meta}
        out["_source"] = self.source
        out["_ingest"] = self.ingest
        return out

    def update_from_simulated(self, rendered: dict[str, Any]) -> None:
        """Take over a ``doc`` object that the simulate API returned for this document."""
        self.source = rendered.get("_source") or {}
        for key in META_KEYS:
            if key not in rendered:
                if key not in ("_index", "_id"):
                    self.meta.pop(key, None)
                continue
            value = rendered[key]
            if key in INT_META:
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    pass
            # The simulate API invents these when a document has none; keep "none".
            if self.meta.get(key) is None and SIMULATE_DEFAULTS.get(key) == value:
                continue
            self.meta[key] = value
        ingest = rendered.get("_ingest")
        if isinstance(ingest, dict):
            for key, value in ingest.items():
                if key not in ("timestamp", "pipeline") and key not in ON_FAILURE_KEYS:
                    self.ingest[key] = value


# -- Java type names used in Elasticsearch's messages --------------------------------------------


def java_type(value: Any, *, ordered_maps: bool = False) -> str:
    """The Java class Elasticsearch would hold for a JSON value (for error messages)."""
    if isinstance(value, bool):
        return "java.lang.Boolean"
    if isinstance(value, int):
        return "java.lang.Integer" if -(2**31) <= value < 2**31 else "java.lang.Long"
    if isinstance(value, float):
        return "java.lang.Double"
    if isinstance(value, str):
        return "java.lang.String"
    if isinstance(value, list):
        return "java.util.ArrayList"
    if isinstance(value, dict):
        return "java.util.LinkedHashMap" if ordered_maps else "java.util.HashMap"
    return "java.lang.Object"


# -- field paths ---------------------------------------------------------------------------------


class FieldError(ValueError):
    """An ``IllegalArgumentException`` of ``IngestDocument`` (status 400)."""


def _parse_path(doc: DocState, path: str) -> tuple[Any, list[str], str]:
    if not path:
        raise FieldError("path cannot be null nor empty")
    if path.startswith("_ingest."):
        context: Any = doc.ingest
        rest = path[len("_ingest."):]
    elif path.startswith("_source."):
        context = doc.source
        rest = path[len("_source."):]
    else:
        context = None
        rest = path
    elements = rest.split(".")
    if not rest or any(e == "" for e in elements):
        raise FieldError(f"path [{path}] is not valid")
    return context, elements, path


def _top(doc: DocState, key: str) -> tuple[bool, Any]:
    if key in META_KEYS and key in doc.meta:
        return True, doc.meta[key]
    if key in doc.source:
        return True, doc.source[key]
    return False, None


def _index(element: str, size: int, path: str) -> int:
    try:
        index = int(element)
    except ValueError:
        raise FieldError(f"[{element}] is not an integer, cannot be used as an index as part of path [{path}]") from None
    if index < 0 or index >= size:
        raise FieldError(f"[{index}] is out of bounds for array with length [{size}] as part of path [{path}]")
    return index


def _resolve(element: str, path: str, context: Any, doc: DocState, top: bool) -> Any:
    if top:
        found, value = _top(doc, element)
        if not found:
            raise FieldError(f"field [{element}] not present as part of path [{path}]")
        return value
    if context is None:
        raise FieldError(f"cannot resolve [{element}] from null as part of path [{path}]")
    if isinstance(context, dict):
        if element not in context:
            raise FieldError(f"field [{element}] not present as part of path [{path}]")
        return context[element]
    if isinstance(context, list):
        return context[_index(element, len(context), path)]
    raise FieldError(
        f"cannot resolve [{element}] from object of type [{java_type(context)}] as part of path [{path}]"
    )


def get_field(doc: DocState, path: str, *, ignore_missing: bool = False) -> tuple[bool, Any]:
    """``IngestDocument.getFieldValue(path, Object.class, ignoreMissing)``: (found, value).
    A missing field raises :class:`FieldError` unless ``ignore_missing``."""
    context, elements, path = _parse_path(doc, path)
    top = context is None
    for element in elements:
        try:
            context = _resolve(element, path, context, doc, top)
        except FieldError:
            if ignore_missing and not has_field(doc, path):
                return False, None
            raise
        top = False
    return True, context


def has_field(doc: DocState, path: str) -> bool:
    try:
        context, elements, path = _parse_path(doc, path)
    except FieldError:
        return False
    top = context is None
    for element in elements:
        try:
            context = _resolve(element, path, context, doc, top)
        except (FieldError, IndexError):
            return False
        top = False
    return True


def _append(existing: Any, value: Any) -> list[Any]:
    out = existing if isinstance(existing, list) else [existing]
    if isinstance(value, list):
        out.extend(value)
    else:
        out.append(value)
    return out


def _set(doc: DocState, path: str, value: Any, append: bool) -> None:
    context, elements, path = _parse_path(doc, path)
    if context is None:
        if len(elements) == 1 and elements[0] in META_KEYS:
            key = elements[0]
            doc.meta[key] = _append(doc.meta.get(key), value) if append and key in doc.meta else value
            return
        context = doc.source
    for element in elements[:-1]:
        if context is None:
            raise FieldError(f"cannot resolve [{element}] from null as part of path [{path}]")
        if isinstance(context, dict):
            child = context.get(element)
            if child is None:
                child = {}
                context[element] = child
            context = child
        elif isinstance(context, list):
            context = context[_index(element, len(context), path)]
        else:
            raise FieldError(
                f"cannot resolve [{element}] from object of type [{java_type(context)}] as part of path [{path}]"
            )
    leaf = elements[-1]
    if context is None:
        raise FieldError(f"cannot set [{leaf}] with null parent as part of path [{path}]")
    if isinstance(context, dict):
        if append and leaf in context:
            context[leaf] = _append(context[leaf], value)
        else:
            context[leaf] = value
    elif isinstance(context, list):
        index = _index(leaf, len(context), path)
        context[index] = _append(context[index], value) if append else value
    else:
        raise FieldError(
            f"cannot set [{leaf}] with parent object of type [{java_type(context)}] as part of path [{path}]"
        )


def set_field(doc: DocState, path: str, value: Any) -> None:
    _set(doc, path, value, append=False)


def append_field(doc: DocState, path: str, value: Any) -> None:
    _set(doc, path, value, append=True)


def set_or_append(doc: DocState, path: str, value: Any) -> None:
    """``InferenceResults.setOrAppendValue``: an existing value is turned into a list."""
    if has_field(doc, path):
        append_field(doc, path, value)
    else:
        set_field(doc, path, value)


def dig(path: str, source: dict[str, Any]) -> Any:
    """``MapHelper.dig``: a dotted path, also matching keys that themselves contain dots."""
    if path in source:
        return source[path]
    parts = path.split(".")
    for i in range(1, len(parts)):
        head = ".".join(parts[:i])
        child = source.get(head)
        if isinstance(child, dict):
            found = dig(".".join(parts[i:]), child)
            if found is not None:
                return found
    return None
