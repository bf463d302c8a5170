"""Templates and response paths of services configured entirely by the user (``custom``):
``${name}`` placeholders filled from a map, and a small JSONPath subset to pick results out of
an answer. Both fail with Elasticsearch's messages (its ``ValidatingSubstitutor`` and
``MapPathExtractor``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

_PLACEHOLDER = re.compile(r"(\$?)\$\{([^}]*)\}")
# What is left over after replacement: ``${...}`` on one line.
_LEFTOVER = re.compile(r"\$\{.*?\}")


class TemplateError(ValueError):
    """A placeholder no value was given for, or a value that cannot be written as JSON."""


def to_json(value: Any, field_name: str) -> str:
    """``value`` as compact JSON (strings quoted and escaped, lists and numbers as they are)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise TemplateError(
            f"Failed to serialize custom request value as JSON, field: {field_name}, error: {exc}"
        ) from None


def substitute(source: str, params: Mapping[str, str], field_name: str) -> str:
    """Replace every ``${key}`` of ``source`` whose key is in ``params`` (``$${key}`` is a literal
    ``${key}``); a placeholder left over afterwards is an error naming it and ``field_name``."""

    def one(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return "${" + name + "}"
        value = params.get(name)
        return match.group(0) if value is None else value

    replaced = _PLACEHOLDER.sub(one, source)
    leftover = _LEFTOVER.search(replaced)
    if leftover:
        raise TemplateError(
            f"Found placeholder [{leftover.group(0)}] in field [{field_name}] after replacement call, "
            "please check that all templates have a corresponding field definition."
        )
    return replaced


# -- response paths ---------------------------------------------------------------------------

_DOT_FIELD = re.compile(r"^\.([^.\[]+)(.*)$", re.DOTALL)
_ARRAY_WILDCARD = re.compile(r"^\[\*\](.*)$", re.DOTALL)
UNKNOWN_FIELD_NAME = "unknown"


class PathError(ValueError):
    """A response path that does not fit the answer (Elasticsearch's IllegalArgumentException)."""


@dataclass
class PathResult:
    """What a path picked out, and the names of the fields crossed on the way (for messages)."""

    value: Any
    fields: list[str] = field(default_factory=list)

    def field_name(self, index: int) -> str:
        return self.fields[index] if 0 <= index < len(self.fields) else UNKNOWN_FIELD_NAME


def java_type(value: Any) -> str:
    """The simple Java class name Elasticsearch's messages use for a parsed JSON value."""
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer" if -(2**31) <= value < 2**31 else "Long"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "ArrayList"
    if isinstance(value, dict):
        return "LinkedHashMap"
    return type(value).__name__


def extract(data: Any, path: str) -> PathResult | None:
    """Follow ``path`` (``$.a.b[*].c``) through ``data``. Lists met with ``[*]`` keep their
    nesting (``$.r[*].k[*].a`` gives a list of lists); missing fields raise :class:`PathError`."""
    if not data or path is None or not path.strip():
        return None
    cleaned = path.strip()
    if not cleaned.startswith("$"):
        raise PathError(f"Path [{cleaned}] must start with a dollar sign ($)")
    fields: list[str] = []
    value = _navigate(data, cleaned[1:], "", fields)
    return PathResult(value, fields)


def _join(current: str, name: str) -> str:
    return f"{current}.{name}" if current else name


def _navigate(current: Any, remaining: str, location: str, fields: list[str]) -> Any:
    if current is None or not remaining:
        return current
    dot = _DOT_FIELD.match(remaining)
    if dot:
        name, rest = dot.group(1), dot.group(2)
        if not isinstance(current, dict):
            raise PathError(
                f"Current path [{remaining}] matched the dot field pattern but the current object is not a map, "
                f"found invalid type [{java_type(current)}] instead."
            )
        if current.get(name) is None:
            raise PathError(f"Unable to find field [{name}] in map")
        if not rest and _join(location, name) not in fields:
            fields.append(_join(location, name))
        return _navigate(current[name], rest, _join(location, name), fields)
    wildcard = _ARRAY_WILDCARD.match(remaining)
    if wildcard:
        if not isinstance(current, list):
            raise PathError(
                f"Current path [{remaining}] matched the array field pattern but the current object is not a list, "
                f"found invalid type [{java_type(current)}] instead."
            )
        if location not in fields:
            fields.append(location)
        results = []
        for item in current:
            found = _navigate(item, wildcard.group(1), location, fields)
            if found is not None:
                results.append(found)
        return results
    raise PathError(f"Invalid path received [{remaining}], unable to extract a field name.")
