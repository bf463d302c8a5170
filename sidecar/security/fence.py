"""The fence around the sidecar's hidden indices, applied to a request: its path, its query
string and its body (JSON bodies at once, ``_bulk``/``_msearch`` bodies line by line as they
stream through, see :mod:`.body`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from ..errors import EsError
from .body import FencedPayload, Violation, forbidden, replace_body
from .indices import IndexFence, expands_hidden

# API segments after which the next path segment is a document or task id, not an index.
_ID_SEGMENTS = frozenset({"_doc", "_create", "_update", "_source", "_explain", "_termvectors", "_tasks"})
# Paths the fence leaves alone: the sidecar's own APIs never take index names.
_OWN_APIS = frozenset({"_inference", "_sidecar"})
# Metadata APIs: reached through a wildcard they show names, mappings and settings, never documents.
_METADATA = frozenset({
    "_cat", "_cluster", "_resolve", "_stats", "_segments", "_recovery", "_mapping", "_mappings", "_settings",
    "_alias", "_aliases", "_field_caps", "_shard_stores", "_data_stream", "_ilm", "_health_report", "_nodes",
    "_refresh", "_flush", "_forcemerge", "_cache",
})
# Metadata APIs that may also be POSTed without changing anything.
_METADATA_POST = frozenset({"_field_caps", "_refresh", "_flush", "_forcemerge", "_cache"})
# Bodies that are documents (the index is in the path): never read by the fence.
_DOCUMENT_BODIES = frozenset({"_doc", "_create", "_update"})
_QUERY_TEXT_APIS = frozenset({"_sql", "_query", "_esql"})
_INDEX_KEYS = frozenset({"index", "indices", "_index", "rename_replacement"})
_BINARY_TYPES = ("cbor", "smile")
_PASSED_PATHS = 4096  # distinct checked paths remembered


def _tokens(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, list):
        return [t for v in value if isinstance(v, str) for t in v.split(",")]
    return []


@dataclass
class _PathView:
    segments: list[str]
    api: str | None  # the first ``_`` segment after any index segment (``_search``, ``_cat``, …)
    index_given: bool


def _path_view(raw_path: str) -> _PathView:
    path = raw_path.split("?", 1)[0]
    segments = [unquote(s) for s in path.split("/") if s] if "%" in path else [s for s in path.split("/") if s]
    index_given = bool(segments) and (not segments[0].startswith("_") or segments[0] == "_all")
    api = next((s for s in segments if s.startswith("_") and s != "_all"), None)
    return _PathView(segments, api, index_given)


class Fence:
    """Applies :class:`IndexFence` to requests."""

    def __init__(self, indices: IndexFence) -> None:
        self.indices = indices
        # (method, raw path with query) -> (path view, expand_hidden) of paths that passed, or
        # None for the sidecar's own APIs: clients repeat the same few paths, and checking one
        # costs several times more than looking it up.
        self._passed: dict[tuple[str, str], tuple[_PathView, bool] | None] = {}
        spellings = [rb"\\", rb"\*", b"_all", *(re.escape(f.encode()) for f in indices.families)]
        self._suspicious_bytes = re.compile(b"|".join(spellings), re.IGNORECASE)

    def _refuse(self, expr: str, kind: str) -> EsError:
        if kind == "explicit":
            return forbidden(f"the index [{expr}] belongs to the inference sidecar and cannot be read or "
                              "written through it")
        return forbidden(f"the index expression [{expr}] would include the inference sidecar's hidden "
                          f"indices [{self.indices.describe()}]; name the indices to use, or leave out "
                          "expand_wildcards=hidden|all")

    def check_expression(self, value: Any, expand_hidden: bool, *, metadata_only: bool = False) -> None:
        for token in _tokens(value):
            kind = self.indices.reach(token, expand_hidden)
            if kind == "explicit" or (kind == "wildcard" and not metadata_only):
                raise self._refuse(token.strip(), kind)

    def check_json(self, value: Any, expand_hidden: bool, *, query_text: bool = False) -> None:
        """Every index named anywhere in a JSON body (terms lookups and ``_index`` of
        ``more_like_this`` included)."""
        stack = [value]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                local = expand_hidden or expands_hidden(node.get("expand_wildcards"))
                for key, item in node.items():
                    if key in _INDEX_KEYS and isinstance(item, (str, list)):
                        self.check_expression(item, local)
                    elif key == "index_patterns":
                        self._check_patterns(item)
                    elif key == "query" and query_text and isinstance(item, str):
                        if self.indices.mentioned_in_text(item):
                            raise forbidden("the query reads the inference sidecar's hidden indices "
                                             f"[{self.indices.describe()}]")
                    if isinstance(item, (dict, list)):
                        stack.append(item)
            elif isinstance(node, list):
                stack.extend(node)

    def _check_patterns(self, value: Any) -> None:
        """Template patterns: any but the global ``*`` (which Elasticsearch never applies to
        hidden indices) must not match the sidecar's indices."""
        for token in _tokens(value):
            expr = token.strip()
            if expr != "*" and self.indices.reach(expr, True) is not None:
                raise self._refuse(expr, "wildcard")

    # -- the parts of a request --------------------------------------------------------------
    def check_path(self, request: web.Request, view: _PathView, expand_hidden: bool) -> None:
        metadata = self._metadata_request(request.method, view)
        after_id = False
        for segment in view.segments:
            if after_id:
                after_id = False
                continue
            if segment in _ID_SEGMENTS:
                after_id = True
                continue
            if segment.startswith("_") and segment != "_all":
                continue
            self.check_expression(segment, expand_hidden, metadata_only=metadata)
        if expand_hidden and not view.index_given and not metadata:
            raise self._refuse("_all", "wildcard")
        if "index" in request.query:
            self.check_expression(request.query["index"], expand_hidden, metadata_only=metadata)

    @staticmethod
    def _metadata_request(method: str, view: _PathView) -> bool:
        if view.api is None:  # GET /{index}: the get-index API
            return method in ("GET", "HEAD")
        if view.api in _METADATA_POST:
            return True
        return view.api in _METADATA and method in ("GET", "HEAD")

    def line_checker(self, api: str, expand_hidden: bool) -> Callable[[bytes], bool]:
        """The per-line check of an NDJSON body; returns whether the next line is a document."""
        if api == "_bulk":
            def bulk_line(line: bytes) -> bool:
                if not line.strip():
                    return False
                action = self._parse(line)
                if not isinstance(action, dict) or len(action) != 1:
                    return False
                (op, meta), = action.items()
                if isinstance(meta, dict) and "_index" in meta:
                    self.check_expression(meta["_index"], False)
                return op in ("index", "create", "update")

            return bulk_line

        def msearch_line(line: bytes) -> bool:
            if line.strip():
                self.check_json(self._parse(line), expand_hidden)
            return False

        return msearch_line

    @staticmethod
    def _parse(raw: bytes) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise forbidden("the request body could not be checked: it is not valid JSON") from None

    def _suspicious(self, raw: bytes) -> bool:
        """Cheap test before parsing a body: it can only reach a hidden index if it spells one
        of their names (in any case), escapes characters, or uses a wildcard or ``_all``."""
        return self._suspicious_bytes.search(raw) is not None

    async def check_body(self, request: web.Request, view: _PathView, expand_hidden: bool,
                         violation: Violation) -> None:
        if not request.body_exists or view.api in _DOCUMENT_BODIES:
            return
        content_type = request.headers.get("Content-Type", "").lower()
        if any(kind in content_type for kind in _BINARY_TYPES):
            raise EsError(406, "status_exception",
                          f"Content-Type header [{request.headers['Content-Type']}] is not supported by the "
                          "inference sidecar for this API; send JSON")
        if view.api == "_bulk" or (view.api or "").startswith("_msearch") or "_msearch" in view.segments:
            api = "_bulk" if view.api == "_bulk" else "_msearch"
            replace_body(request, FencedPayload(request.content, self.line_checker(api, expand_hidden), violation))
            return
        # The checked bytes stay in aiohttp's read cache: handlers and the pass-through read
        # them with ``request.read()`` (the stream itself is spent, so nothing unchecked is left).
        raw = await request.read()
        if not raw.strip() or not self._suspicious(raw):
            return
        query_text = view.api in _QUERY_TEXT_APIS
        if "yaml" in content_type:
            raise forbidden("the request body could not be checked: send it as JSON")
        self.check_json(self._parse(raw), expand_hidden, query_text=query_text)

    def _checked_path(self, request: web.Request) -> tuple[_PathView, bool] | None:
        """The path's view and whether it expands to hidden indices, once it passed the
        check (raises when it does not); None for the sidecar's own APIs."""
        key = (request.method, request.raw_path)
        try:
            return self._passed[key]
        except KeyError:
            pass
        view = _path_view(request.raw_path)
        passed: tuple[_PathView, bool] | None = None
        if not (view.segments and view.segments[0] in _OWN_APIS):
            expand_hidden = expands_hidden(request.query.getall("expand_wildcards", []))
            self.check_path(request, view, expand_hidden)
            passed = (view, expand_hidden)
        if len(self._passed) >= _PASSED_PATHS:
            self._passed.clear()
        self._passed[key] = passed
        return passed

    async def check(self, request: web.Request) -> Violation:
        violation = Violation()
        passed = self._checked_path(request)
        if passed is not None:
            await self.check_body(request, *passed, violation)
        return violation
