"""Asking Elasticsearch, with the caller's own credentials, whether the caller may perform an
action of the sidecar's APIs (``_security/user/_has_privileges``), with a short cache per
credential, and answering refusals in Elasticsearch's words."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ..errors import EsError
from ..es.upstream import Upstream, body_content_type, end_to_end_headers
from ..proxy import forwarded_request_headers
from ..singleflight import SingleFlight
from .actions import Action

log = logging.getLogger("sidecar.security")

PRIVILEGE_CACHE_TTL_S = 5.0
PRIVILEGE_CACHE_SIZE = 10_000
SECURITY_PROBE_TTL_S = 30.0
HAS_PRIVILEGES = "/_security/user/_has_privileges"
AUTHENTICATE = "/_security/_authenticate"

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
