"""Elasticsearch's ``filter_path`` response filtering, for responses the sidecar builds itself
(``a.b``, ``*`` and ``**`` wildcards, ``-`` exclusions, comma-separated)."""

from __future__ import annotations

import fnmatch
from typing import Any


def _match(segments: list[str], body: Any) -> Any:
    if not segments:
        return body
    head, rest = segments[0], segments[1:]
    if isinstance(body, list):
        kept = [_match(segments, v) for v in body]
        kept = [v for v in kept if v is not _NOTHING]
        return kept if kept else _NOTHING
    if not isinstance(body, dict):
        return _NOTHING
    out: dict[str, Any] = {}
    for key, value in body.items():
        if head == "**":
            deeper = _match(segments, value)  # ** spans any depth
            here = _match(rest, value) if rest else value
            picked = here if here is not _NOTHING else deeper
            if picked is not _NOTHING:
                out[key] = picked
        elif fnmatch.fnmatchcase(key, head):
            picked = _match(rest, value)
            if picked is not _NOTHING:
                out[key] = picked
    return out if out else _NOTHING


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = _merge(out[key], value) if key in out else value
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [_merge(x, y) for x, y in zip(a, b, strict=True)]
    return b


def _exclude(segments: list[str], body: Any) -> Any:
    if isinstance(body, list):
        return [_exclude(segments, v) for v in body]
    if not isinstance(body, dict) or not segments:
        return body
    head, rest = segments[0], segments[1:]
    out = {}
    for key, value in body.items():
        if fnmatch.fnmatchcase(key, head):
            if not rest:
                continue
            out[key] = _exclude(rest, value)
        else:
            out[key] = value
    return out


class _Nothing:
    pass


_NOTHING = _Nothing()


def filter_response(body: Any, filter_path: str) -> Any:
    paths = [p.strip() for p in filter_path.split(",") if p.strip()]
    includes = [p for p in paths if not p.startswith("-")]
    excludes = [p[1:] for p in paths if p.startswith("-")]
    result: Any = body
    if includes:
        result = _NOTHING
        for path in includes:
            picked = _match(path.split("."), body)
            if picked is not _NOTHING:
                result = picked if result is _NOTHING else _merge(result, picked)
        if result is _NOTHING:
            result = {}
    for path in excludes:
        result = _exclude(path.split("."), result)
    return result
