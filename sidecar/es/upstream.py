"""The pooled HTTP connection to Elasticsearch that the proxy and the caller-credential client
share, and the header rules of forwarding (RFC 9110 hop-by-hop fields, content types)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from multidict import CIMultiDict

from ..errors import EsError, unavailable

# RFC 9110 §7.6.1 hop-by-hop fields, plus the de-facto ones proxies also strip.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
def _connection_tokens(headers: Mapping[str, str]) -> set[str]:
    tokens: set[str] = set()
    for value in headers.getall("Connection", []) if hasattr(headers, "getall") else [headers.get("Connection", "")]:
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def end_to_end_headers(headers: Mapping[str, str], drop: Iterable[str] = ()) -> CIMultiDict[str]:
    """Copy headers without hop-by-hop fields (and those named in ``Connection``)."""
    skip = HOP_BY_HOP.union(d.lower() for d in drop)
    if "Connection" in headers:
        skip |= _connection_tokens(headers)
    # Built in one call: this runs twice for every request passed through.
    return CIMultiDict([(key, value) for key, value in headers.items() if key.lower() not in skip])


class Upstream:
    """A pooled HTTP client to Elasticsearch used by the proxy and by sidecar handlers that
    must talk to Elasticsearch with the caller's own credentials."""

    def __init__(self, base_url: str, *, ssl: Any = None, limit: int = 256) -> None:
        self.base_url = base_url.rstrip("/")
        self._ssl = ssl
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, raw_path: str) -> str:
        return self.base_url + raw_path

    async def request(
        self,
        method: str,
        raw_path: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        timeout: float | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request to Elasticsearch; connection failures become ES-shaped 503s."""
        options: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(total=timeout, sock_connect=10)} if timeout else {}
        try:
            return await self.session.request(
                method, self.url(raw_path), headers=headers, data=data, allow_redirects=False, **options)
        except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
            raise es_unreachable(exc) from exc


def es_unreachable(exc: BaseException) -> EsError:
    detail = str(exc) or type(exc).__name__
    return unavailable(f"Elasticsearch is unavailable: {detail}")


def body_content_type(headers: Mapping[str, str], ndjson: bool = False) -> str:
    """The Content-Type for a body the sidecar sends on a caller's behalf. Elasticsearch
    requires it to agree with a ``compatible-with`` Accept header (as the official clients send)."""
    accept = headers.get("Accept", "")
    kind = "x-ndjson" if ndjson else "json"
    if "compatible-with=" in accept:
        version = accept.split("compatible-with=")[-1].split(";")[0].split(",")[0].strip()
        return f"application/vnd.elasticsearch+{kind}; compatible-with={version}"
    return f"application/{kind}"
