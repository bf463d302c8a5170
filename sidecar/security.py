"""Authorization of the sidecar's own APIs, and the fence around its hidden indices.

**Privileges.** When Elasticsearch has security enabled, the sidecar asks it, with the
caller's own credentials, whether the caller may do what the request asks
(``_security/user/_has_privileges`` with the Elasticsearch action name, so any role that
Elasticsearch would allow is allowed here):

- ``PUT _inference/...``: ``cluster:admin/xpack/inference/put`` (``manage_inference``);
- ``PUT|POST _inference/.../_update``: ``cluster:admin/xpack/inference/update`` (``manage_inference``);
- ``DELETE _inference/...``: ``cluster:admin/xpack/inference/delete`` (``manage_inference``);
- ``GET _inference/...``: ``cluster:monitor/xpack/inference/get`` (``monitor_inference``);
- ``GET _inference/_services``: ``cluster:monitor/xpack/inference/services/get`` (``monitor_inference``);
- ``POST _inference/...`` and ``_stream``: ``cluster:monitor/xpack/inference`` (``monitor_inference``);
- ``GET _ml/trained_models/.../_stats``: ``cluster:monitor/xpack/ml/inference/stats/get``
  (``monitor_ml``), or ``monitor_inference``;
- ``GET _tasks/{id}`` and ``POST _tasks/{id}/_cancel`` (the sidecar's reindex tasks):
  ``cluster:monitor/task/get`` (``monitor``), ``cluster:admin/tasks/cancel`` (``cancel_task``).

Answers are cached per credential for :data:`PRIVILEGE_CACHE_TTL_S` seconds. A request
without valid credentials gets Elasticsearch's own ``401``; a caller without the privilege
gets Elasticsearch's ``403 security_exception`` naming the action and the user. A node with
security disabled (its ``_has_privileges`` handler does not exist) gets no checks; that is
re-probed every :data:`SECURITY_PROBE_TTL_S` seconds.

**Hidden indices.** The sidecar's own indices (``.sidecar-inference*``, ``.sidecar-pipelines``,
``.sidecar-tasks`` for the default prefix) are read and written only by the sidecar, with its
own credentials. A request that names them (path, query, or body: ``_bulk`` action lines,
``_msearch`` lines, ``_mget`` docs, terms lookups, ``_reindex``, ``_aliases``, templates,
SQL/ES|QL text) is refused with ``403``, whatever the caller's privileges. Wildcards and
``_all`` that would expand to them (a pattern starting with ``.``, or any pattern with
``expand_wildcards=hidden|all``) are refused too, except for metadata reads (``_cat``,
``_mapping``, ``_settings``, ``_stats``, …) that show no documents. ``_bulk`` and
``_msearch`` bodies are checked line by line as they stream through, so large bodies are
never held in memory.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from .errors import EsError
from .proxy import Upstream, body_content_type, end_to_end_headers, forwarded_request_headers
from .singleflight import SingleFlight

log = logging.getLogger("sidecar.security")

PRIVILEGE_CACHE_TTL_S = 5.0
PRIVILEGE_CACHE_SIZE = 10_000
SECURITY_PROBE_TTL_S = 30.0
# The longest ``_bulk`` action line / ``_msearch`` line the fence checks; longer ones are refused.
MAX_CHECKED_LINE = 4 * 1024 * 1024
HAS_PRIVILEGES = "/_security/user/_has_privileges"
AUTHENTICATE = "/_security/_authenticate"

_MANAGE = ("manage_inference", "manage", "all")
_MONITOR = ("monitor_inference", "manage_inference", "monitor", "manage", "all")
_STATS_ACTION = "cluster:monitor/xpack/ml/inference/stats/get"


@dataclass(frozen=True)
class Action:
    """An Elasticsearch action name, the privileges that grant it (as Elasticsearch lists them
    in its denial message), and any other privilege the sidecar also accepts for it."""

    name: str
    granted_by: tuple[str, ...]
    also: tuple[str, ...] = ()


PUT = Action("cluster:admin/xpack/inference/put", _MANAGE)
UPDATE = Action("cluster:admin/xpack/inference/update", _MANAGE)
DELETE = Action("cluster:admin/xpack/inference/delete", _MANAGE)
GET = Action("cluster:monitor/xpack/inference/get", _MONITOR)
SERVICES = Action("cluster:monitor/xpack/inference/services/get", _MONITOR)
INFER = Action("cluster:monitor/xpack/inference", _MONITOR)
TASK_GET = Action("cluster:monitor/task/get", ("monitor", "manage", "all"))
TASK_CANCEL = Action("cluster:admin/tasks/cancel", ("cancel_task", "manage", "all"))
STATS = Action(
    _STATS_ACTION,
    ("monitor_inference", "monitor_ml", "manage_inference", "manage_ml", "monitor", "manage", "all"),
    also=("monitor_inference",),
)


def action_for(method: str, path: str) -> Action | None:
    """The action a request to one of the sidecar's own APIs performs, or None."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    if parts[0] == "_inference":
        if parts[-1] == "_update" and method in ("PUT", "POST"):
            return UPDATE
        if method == "PUT":
            return PUT
        if method == "DELETE":
            return DELETE
        if method in ("GET", "HEAD"):
            return SERVICES if len(parts) > 1 and parts[1] == "_services" else GET
        if method == "POST":
            return INFER
        return None
    if parts[:2] == ["_ml", "trained_models"] and parts[-1] == "_stats" and method in ("GET", "HEAD"):
        return STATS
    if parts[0] == "_tasks" and len(parts) == 2 and method in ("GET", "HEAD"):
        return TASK_GET
    if parts[0] == "_tasks" and len(parts) == 3 and parts[2] == "_cancel" and method == "POST":
        return TASK_CANCEL
    return None


# ---------------------------------------------------------------------------------------------
# privileges
# ---------------------------------------------------------------------------------------------

# Request headers that carry who the caller is.
_IDENTITY_HEADERS = ("authorization", "es-security-runas-user", "es-secondary-authorization")
_DISABLED_MARKERS = (
    "no handler found for uri",
    "incorrect http method for uri",
    "security must be explicitly enabled",
    "security is not enabled",
    "security is disabled",
)


@dataclass
class _Verdict:
    allowed: bool
    reason: str = ""
    expires: float = 0.0


def _identity_key(request: web.Request, action: Action) -> str:
    digest = hashlib.sha256()
    for name in _IDENTITY_HEADERS:
        for value in request.headers.getall(name, []):
            digest.update(name.encode() + b"\0" + value.encode() + b"\0")
    digest.update(action.name.encode())
    return digest.hexdigest()


def denial_reason(action: Action, who: dict[str, Any]) -> str:
    """Elasticsearch's wording (``AuthorizationDenialMessages``) for a denied cluster action,
    from the caller's ``_security/_authenticate`` answer."""
    username = who.get("username", "")
    token = who.get("token") if isinstance(who.get("token"), dict) else {}
    api_key = who.get("api_key") if isinstance(who.get("api_key"), dict) else None
    if str(token.get("type", "")).startswith("_service_account"):
        user = f"service account [{username}]"
    elif api_key is not None or who.get("authentication_type") == "api_key":
        user = f"API key id [{(api_key or {}).get('id', '')}] of user [{username}]"
    else:
        roles = ",".join(sorted(str(r) for r in who.get("roles") or []))
        user = f"user [{username}] with effective roles [{roles}]"
    return (f"action [{action.name}] is unauthorized for {user}, this action is granted by the cluster "
            f"privileges [{','.join(action.granted_by)}]")


class Authorizer:
    """Checks the caller's cluster privileges with Elasticsearch, with a short cache."""

    def __init__(self, upstream: Upstream, *, ttl_s: float = PRIVILEGE_CACHE_TTL_S,
                 probe_ttl_s: float = SECURITY_PROBE_TTL_S, cache_size: int = PRIVILEGE_CACHE_SIZE) -> None:
        self.upstream = upstream
        self.ttl_s = ttl_s
        self.probe_ttl_s = probe_ttl_s
        self.cache_size = cache_size
        self._cache: OrderedDict[str, _Verdict] = OrderedDict()
        self._disabled_until = 0.0
        self._seen_disabled = False
        self._checks: SingleFlight[tuple[int, Any, bytes] | None] = SingleFlight()

    @property
    def security_disabled(self) -> bool:
        return time.monotonic() < self._disabled_until

    def _remember(self, key: str, verdict: _Verdict) -> None:
        verdict.expires = time.monotonic() + self.ttl_s
        self._cache[key] = verdict
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def authorize(self, request: web.Request, action: Action) -> web.StreamResponse | None:
        """None when the caller may go on; Elasticsearch's own answer when it could not
        authenticate them. Raises the ``403`` when the privilege is missing. Concurrent
        requests of one caller and action share one check (a burst after the cache expired
        would otherwise send Elasticsearch one ``_has_privileges`` per request)."""
        if self.security_disabled:
            return None
        key = _identity_key(request, action)
        cached = self._cache.get(key)
        if cached is not None and cached.expires > time.monotonic():
            if cached.allowed:
                return None
            raise EsError(403, "security_exception", cached.reason)
        answer = await self._checks.run(key, lambda: self._check(forwarded_request_headers(request), action, key))
        if answer is None:
            return None
        return self._passed_back(request, *answer)

    async def _check(self, headers, action: Action, key: str) -> tuple[int, Any, bytes] | None:
        """Ask Elasticsearch: None when allowed (or security is off), Elasticsearch's answer
        ``(status, headers, body)`` to pass back when it could not authenticate the caller."""
        for name in ("Content-Length", "Content-Encoding", "Transfer-Encoding", "Accept-Encoding"):
            headers.popall(name, None)
        headers["Content-Type"] = body_content_type(headers)
        wanted = [action.name, *action.also]
        try:
            status, resp_headers, raw = await self._call("POST", HAS_PRIVILEGES, headers, {"cluster": wanted})
        except EsError as err:
            if err.status == 503 and self._seen_disabled:
                return None  # unreachable now, and without security when last reachable
            raise
        if status in (200, 401):
            self._seen_disabled = False
        if status == 200:
            answer = orjson.loads(raw)
            granted = answer.get("cluster") or {}
            if any(granted.get(name) for name in wanted):
                self._remember(key, _Verdict(True))
                return None
            who_status, _, who_raw = await self._call("GET", AUTHENTICATE, headers, None)
            who = orjson.loads(who_raw) if who_status == 200 else {"username": answer.get("username", "")}
            verdict = _Verdict(False, denial_reason(action, who))
            self._remember(key, verdict)
            log.info("denied", extra={"fields": {"action": action.name, "user.name": who.get("username")}})
            raise EsError(403, "security_exception", verdict.reason)
        text = raw.decode(errors="replace").lower()
        if status in (400, 404, 405, 500) and any(marker in text for marker in _DISABLED_MARKERS):
            if not self._seen_disabled:
                log.info("Elasticsearch has security disabled: the sidecar's APIs are not access-checked")
            self._disabled_until = time.monotonic() + self.probe_ttl_s
            self._seen_disabled = True
            return None
        return status, resp_headers, raw

    async def _call(self, method: str, path: str, headers, body: Any) -> tuple[int, Any, bytes]:
        data = orjson.dumps(body) if body is not None else None
        resp = await self.upstream.request(method, path, headers=headers, data=data, timeout=30)
        try:
            raw = await resp.read()
        finally:
            resp.release()
        return resp.status, resp.headers, raw

    @staticmethod
    def _passed_back(request: web.Request, status: int, headers, raw: bytes) -> web.Response:
        """Elasticsearch's answer (a ``401`` mostly), naming the caller's request as it would."""
        raw = raw.replace(f"[{HAS_PRIVILEGES}]".encode(), f"[{request.path}]".encode())
        out = end_to_end_headers(headers, drop=("Content-Length", "Content-Encoding"))
        return web.Response(status=status, body=raw, headers=out)


# ---------------------------------------------------------------------------------------------
# the fence around the hidden indices
# ---------------------------------------------------------------------------------------------

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
_DATE_MATH = re.compile(r"\{.*\}")
_DOTTED_TOKEN = re.compile(r"<?\.[^\s,\"'`|()\[\]=;]*")


def _forbidden(reason: str) -> EsError:
    return EsError(403, "security_exception", reason)


class IndexFence:
    """Decides whether index expressions reach the sidecar's hidden indices."""

    def __init__(self, families: Iterable[str]) -> None:
        # Name prefixes: every index whose name starts with one of them is the sidecar's.
        self.families = tuple(sorted({f.lower() for f in families}))

    @classmethod
    def for_prefix(cls, system_index_prefix: str) -> IndexFence:
        base = system_index_prefix.removesuffix("-inference")
        return cls((system_index_prefix, f"{base}-pipelines", f"{base}-tasks"))

    def describe(self) -> str:
        return ", ".join(f"{f}*" for f in self.families)

    def _owned(self, name: str) -> bool:
        return name.startswith(self.families)

    def _may_match(self, pattern: str) -> bool:
        """Whether a ``*`` pattern matches some name in a family."""
        literal = pattern.split("*", 1)[0]
        return any(literal.startswith(f) or f.startswith(literal) for f in self.families)

    def reach(self, token: str, expand_hidden: bool) -> str | None:
        """``"explicit"`` when the expression names a hidden index of the sidecar,
        ``"wildcard"`` when it expands to one, else None."""
        expr = token.strip().lower()
        if not expr or expr.startswith("-"):
            return None
        expr = expr.split("::", 1)[0]  # data/failures selectors
        if expr.startswith("<") and expr.endswith(">"):
            expr = _DATE_MATH.sub("*", expr[1:-1])
        if ":" in expr:  # another cluster's index
            return None
        if expr in ("_all", "*"):
            return "wildcard" if expand_hidden else None
        if "*" in expr:
            if self._may_match(expr) and (expand_hidden or expr.startswith(".")):
                return "wildcard"
            return None
        return "explicit" if self._owned(expr) else None

    def mentioned_in_text(self, text: str) -> bool:
        """Whether query text (SQL, ES|QL) names or expands to a hidden index."""
        return any(self.reach(match.group(0).rstrip(".;"), False) is not None
                   for match in _DOTTED_TOKEN.finditer(text.lower()))


def expands_hidden(value: Any) -> bool:
    if isinstance(value, list):
        return any(expands_hidden(v) for v in value)
    if not isinstance(value, str):
        return False
    return any(v.strip().lower() in ("hidden", "all") for v in value.split(","))


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
    segments = [unquote(s) for s in raw_path.split("?", 1)[0].split("/") if s]
    index_given = bool(segments) and (not segments[0].startswith("_") or segments[0] == "_all")
    api = next((s for s in segments if s.startswith("_") and s != "_all"), None)
    return _PathView(segments, api, index_given)


class _Violation:
    """Holds the first violation found while a body streams through (the forwarding may
    turn it into another error before it reaches the caller)."""

    error: EsError | None = None


class FencedPayload:
    """Stands in for ``request.content``: passes the caller's NDJSON body through unchanged,
    checking each ``_bulk`` action line (or every ``_msearch`` line) before it is released."""

    def __init__(self, source: Any, check: Callable[[bytes], bool], violation: _Violation) -> None:
        self._source = source
        self._check = check  # line -> whether the next line is a document to pass unchecked
        self._violation = violation
        self._out = bytearray()
        self._line = bytearray()
        self._skip_line = False
        self._eof = False

    # -- the filter ----------------------------------------------------------------------------
    def _fail(self, err: EsError) -> EsError:
        if self._violation.error is None:
            self._violation.error = err
        return err

    def _feed(self, chunk: bytes) -> None:
        pos, end = 0, len(chunk)
        while pos < end:
            newline = chunk.find(b"\n", pos)
            if self._skip_line:
                stop = end if newline < 0 else newline + 1
                self._out += chunk[pos:stop]
                pos = stop
                if newline >= 0:
                    self._skip_line = False
                continue
            if newline < 0:
                self._line += chunk[pos:]
                if len(self._line) > MAX_CHECKED_LINE:
                    raise self._fail(_forbidden("a line of the request body is too long to be checked"))
                return
            self._line += chunk[pos:newline]
            self._release_line(b"\n")
            pos = newline + 1

    def _release_line(self, ending: bytes) -> None:
        line = bytes(self._line)
        self._line.clear()
        try:
            self._skip_line = self._check(line)
        except EsError as err:
            raise self._fail(err) from None
        self._out += line + ending

    async def _fill(self) -> None:
        if self._violation.error is not None:
            raise self._violation.error
        while not self._out and not self._eof:
            chunk = await self._source.readany()
            if not chunk:
                self._eof = True
                if self._line:
                    self._release_line(b"")
                break
            self._feed(chunk)

    def _take(self, n: int) -> bytes:
        n = len(self._out) if n < 0 else min(n, len(self._out))
        data = bytes(self._out[:n])
        del self._out[:n]
        return data

    # -- the StreamReader interface the handlers use ---------------------------------------------
    async def readany(self) -> bytes:
        await self._fill()
        return self._take(-1)

    async def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = []
            while chunk := await self.readany():
                parts.append(chunk)
            return b"".join(parts)
        await self._fill()
        return self._take(n)

    async def readchunk(self) -> tuple[bytes, bool]:
        return await self.readany(), False

    async def readline(self) -> bytes:
        while True:
            newline = self._out.find(b"\n")
            if newline >= 0:
                return self._take(newline + 1)
            if self._eof:
                return self._take(-1)
            chunk = await self._source.readany()
            if not chunk:
                self._eof = True
                if self._line:
                    self._release_line(b"")
            else:
                self._feed(chunk)

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        while chunk := await self.read(n):
            yield chunk

    async def iter_any(self) -> AsyncIterator[bytes]:
        while chunk := await self.readany():
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[bytes]:
        while line := await self.readline():
            yield line

    def at_eof(self) -> bool:
        return self._eof and not self._out

    def is_eof(self) -> bool:
        return self.at_eof()

    def exception(self) -> BaseException | None:
        return self._violation.error or self._source.exception()

    def set_exception(self, exc: BaseException, exc_cause: BaseException | None = None) -> None:
        self._source.set_exception(exc)

    def set_read_chunk_size(self, size: int) -> None:
        setter = getattr(self._source, "set_read_chunk_size", None)
        if setter is not None:
            setter(size)

    @property
    def total_bytes(self) -> int:
        return self._source.total_bytes


class ReplayPayload(FencedPayload):
    """A body the fence has already read in full, served again to the handler (without a copy)."""

    def __init__(self, source: Any, data: bytes) -> None:
        super().__init__(source, lambda line: False, _Violation())
        self._data, self._pos, self._eof = data, 0, True

    async def _fill(self) -> None:
        return None

    def _take(self, n: int) -> bytes:
        end = len(self._data) if n < 0 else min(len(self._data), self._pos + n)
        chunk = self._data[self._pos:end]
        self._pos = end
        return chunk

    async def readline(self) -> bytes:
        newline = self._data.find(b"\n", self._pos)
        return self._take(-1 if newline < 0 else newline + 1 - self._pos)

    def at_eof(self) -> bool:
        return self._pos >= len(self._data)


def _replace_body(request: web.Request, payload: FencedPayload) -> None:
    """Make ``payload`` the request's body stream for the handlers (aiohttp keeps it in
    ``_payload`` and caches ``content`` on first use). Fails closed if that ever stops working."""
    request._payload = payload
    request._cache["content"] = payload
    if request.content is not payload:
        raise EsError(500, "exception", "the sidecar cannot check this request body")


class Fence:
    """Applies :class:`IndexFence` to requests."""

    def __init__(self, indices: IndexFence) -> None:
        self.indices = indices

    def _refuse(self, expr: str, kind: str) -> EsError:
        if kind == "explicit":
            return _forbidden(f"the index [{expr}] belongs to the inference sidecar and cannot be read or "
                              "written through it")
        return _forbidden(f"the index expression [{expr}] would include the inference sidecar's hidden "
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
                            raise _forbidden("the query reads the inference sidecar's hidden indices "
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
            raise _forbidden("the request body could not be checked: it is not valid JSON") from None

    def _suspicious(self, raw: bytes) -> bool:
        """Cheap test before parsing a body: it can only reach a hidden index if it spells one
        of their names, escapes characters, or uses a wildcard."""
        lowered = raw.lower()
        return (b"\\" in raw or b"*" in raw or b"_all" in lowered
                or any(f.encode() in lowered for f in self.indices.families))

    async def check_body(self, request: web.Request, view: _PathView, expand_hidden: bool,
                         violation: _Violation) -> None:
        if not request.body_exists or view.api in _DOCUMENT_BODIES:
            return
        content_type = request.headers.get("Content-Type", "").lower()
        if any(kind in content_type for kind in _BINARY_TYPES):
            raise EsError(406, "status_exception",
                          f"Content-Type header [{request.headers['Content-Type']}] is not supported by the "
                          "inference sidecar for this API; send JSON")
        if view.api == "_bulk" or (view.api or "").startswith("_msearch") or "_msearch" in view.segments:
            api = "_bulk" if view.api == "_bulk" else "_msearch"
            _replace_body(request, FencedPayload(request.content, self.line_checker(api, expand_hidden), violation))
            return
        raw = await request.read()
        _replace_body(request, ReplayPayload(request.content, raw))
        if not raw.strip() or not self._suspicious(raw):
            return
        query_text = view.api in _QUERY_TEXT_APIS
        if "yaml" in content_type:
            raise _forbidden("the request body could not be checked: send it as JSON")
        self.check_json(self._parse(raw), expand_hidden, query_text=query_text)

    async def check(self, request: web.Request) -> _Violation:
        view = _path_view(request.raw_path)
        violation = _Violation()
        if view.segments and view.segments[0] in _OWN_APIS:
            return violation
        expand_hidden = expands_hidden(request.query.getall("expand_wildcards", []))
        self.check_path(request, view, expand_hidden)
        await self.check_body(request, view, expand_hidden, violation)
        return violation


# ---------------------------------------------------------------------------------------------
# wiring
# ---------------------------------------------------------------------------------------------

AUTHORIZER = web.AppKey("sidecar_authorizer", Authorizer)
FENCE = web.AppKey("sidecar_fence", Fence)


@web.middleware
async def security_middleware(request: web.Request, handler):
    action = action_for(request.method, request.path)
    if action is not None:
        passed_back = await request.app[AUTHORIZER].authorize(request, action)
        if passed_back is not None:
            return passed_back
        return await handler(request)
    violation = await request.app[FENCE].check(request)
    try:
        response = await handler(request)
    except Exception:
        if violation.error is not None:
            raise violation.error from None
        raise
    if violation.error is not None and not response.prepared:
        raise violation.error
    return response


def setup(app: web.Application) -> None:
    """Adds the checks to ``app`` (inside the error middleware, so refusals render as
    Elasticsearch errors). Call after ``app["upstream"]`` is set."""
    config = app["config"]
    app[AUTHORIZER] = Authorizer(app["upstream"])
    app[FENCE] = Fence(IndexFence.for_prefix(config.system_index_prefix))
    app.middlewares.append(security_middleware)

