"""Reading a semantic_text field's value out of a document's ``_source``: where it is (dotted
names or nested objects) and the text it stands for."""

from __future__ import annotations

from typing import Any

from ..errors import EsError
from .layout import NUL

MISSING = object()


def get_path(source: dict[str, Any], dotted: str) -> Any:
    """A field's value in ``_source``, whether written as nested objects or with dots."""
    if dotted in source:
        return source[dotted]
    head, _, rest = dotted.partition(".")
    while rest:
        node = source.get(head)
        if isinstance(node, dict):
            found = get_path(node, rest)
            if found is not MISSING:
                return found
        nxt, _, rest = rest.partition(".")
        head = f"{head}.{nxt}"
    return source.get(dotted, MISSING)


def field_text(value: Any, name: str) -> str | None:
    """The text to embed for one source field (arrays joined with NUL, as Elasticsearch does)."""
    if value is MISSING or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        values = [v for v in value if v is not None]
        return NUL.join(values) if values else None
    if isinstance(value, (int, float, bool)) and not isinstance(value, bool):
        return str(value)
    raise EsError(
        400, "document_parsing_exception",
        f"[1:1] failed to parse field [{name}] of type [semantic_text]: expected a string or an array of strings",
    )
