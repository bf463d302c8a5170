"""Reading a semantic_text field's value out of a document's ``_source``: where it is (dotted
names or nested objects) and the text it stands for."""

from __future__ import annotations

import math
from decimal import Decimal
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


def field_values(value: Any, name: str) -> list[str] | None:
    """The texts one source field gives (``SemanticTextUtils.nodeStringValues``): a string, a
    number or a boolean as its string form, or an array of them; None when there is no value."""
    if value is MISSING or value is None:
        return None
    if isinstance(value, list):
        if not all(isinstance(v, (str, int, float)) for v in value):
            raise _invalid_format(name, value)
        return [_string(v) for v in value]
    if isinstance(value, (str, int, float)):
        return [_string(value)]
    raise _invalid_format(name, value)


def field_text(value: Any, name: str) -> str | None:
    """The text of one source field: its values joined with NUL, as Elasticsearch concatenates
    them (chunk offsets index into this text)."""
    values = field_values(value, name)
    return NUL.join(values) if values is not None else None


def _string(value: str | int | float) -> str:
    """``Object.toString`` of what Elasticsearch parsed the JSON value as."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    return str(value)


def java_double(value: float) -> str:
    """``Double.toString`` (shortest digits): plain between 10^-3 and 10^7, else ``d.dddE±n``."""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = exponent + len(digits) - 1
    mantissa = text[0] + "." + (text[1:] or "0")
    return f"{'-' if sign else ''}{mantissa}E{power}"


def _invalid_format(name: str, value: Any) -> EsError:
    java_type = "ArrayList" if isinstance(value, list) else "HashMap"
    return EsError(400, "status_exception",
                   f"Invalid format for field [{name}], expected [String|Number|Boolean] got [{java_type}]")
