"""The HTTP client of one remote service: a pooled session, the endpoints' rate limits, the
retry loop, and the caller's ``timeout`` honoured end to end (queueing for the rate limit,
every attempt and every back-off sleep count against it). Provider failures come out as
Elasticsearch-shaped :class:`~sidecar.errors.EsError` s only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import orjson
from tenacity import AsyncRetrying
from yarl import URL

from .. import metrics
from ..errors import EsError, status_exception
from ..errors import timeout as timeout_error
from ..protocol.service import Endpoint
from .errors import (
    DEFAULT_POLICY,
    ErrorPolicy,
    connection_error,
    error_message,
    malformed,
    provider_error,
    stream_interrupted,
)
from .options import HttpOptions, format_time_value, safe_url
from .ratelimit import TokenBucket
from .responses import MalformedResponse
from .retry import Retry, parse_retry_after, retrying
from .streams import lines_of

T = TypeVar("T")


@dataclass
class HttpRequest:
    """One upstream call. ``json`` is encoded with orjson; ``prepare`` (optional) is awaited
    before every attempt to add headers that depend on time or on the body (OAuth tokens,
    AWS signatures)."""

    url: str
    json: Any = None
    data: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    prepare: Callable[[HttpRequest, bytes], Awaitable[dict[str, str]]] | None = None
    # The URL is already percent-encoded exactly as it must go on the wire (signed URLs).
    encoded: bool = False

    def body(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.json is None:
            return b""
        return orjson.dumps(self.json)


@dataclass
class Truncation:
    """How to retry a "content too large" request: ``rebuild(halved_inputs)`` builds the new
    request; ``flags`` records which inputs were cut."""

    inputs: Sequence[str]
    rebuild: Callable[[list[str]], HttpRequest]
    flags: list[bool] = field(default_factory=list)

    def halve(self) -> HttpRequest:
        halved = [text[: max(1, len(text) // 2)] if len(text) > 1 else text for text in self.inputs]
        self.flags = [len(a) != len(b) for a, b in zip(self.inputs, halved, strict=True)]
        return self.rebuild(halved)


class HttpClient:
    """The pooled session, rate limiters and retry loop of one service."""

    def __init__(self, service_name: str, context: Any = None) -> None:
        self.service_name = service_name
        self.options = HttpOptions.from_context(context)
        self._session: aiohttp.ClientSession | None = None
        self._buckets: dict[str, TokenBucket] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.options.max_connections, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.options.connect_timeout, sock_read=self.options.read_timeout
                ),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # -- rate limiting -----------------------------------------------------------------------
    def bucket(self, endpoint: Endpoint, default_rpm: int | None) -> TokenBucket | None:
        limit = endpoint.service_settings.get("rate_limit") or {}
        rpm = limit.get("requests_per_minute") if isinstance(limit, Mapping) else None
        rpm = rpm or default_rpm
        if not rpm or rpm <= 0:
            return None
        bucket = self._buckets.get(endpoint.inference_id)
        if bucket is None or bucket.per_minute != rpm:
            bucket = self._buckets[endpoint.inference_id] = TokenBucket(rpm)
        return bucket

    # -- calls -------------------------------------------------------------------------------
    async def call(
        self,
        endpoint: Endpoint,
        request: HttpRequest,
        parse: Callable[[Any], T],
        *,
        timeout: float | None = None,
        policy: ErrorPolicy = DEFAULT_POLICY,
        default_rpm: int | None = None,
        truncation: Truncation | None = None,
        rate_limited: bool = True,
    ) -> T:
        """Send ``request`` (rate limited unless told otherwise, retried) and return
        ``parse(json)`` of the answer. Raises :class:`EsError` only."""

        async def run() -> T:
            body = await self._send(endpoint, request, policy, default_rpm, truncation, rate_limited)
            return self._parse(endpoint, body, parse)

        return await self.with_deadline(run(), timeout)

    async def with_deadline(self, awaitable: Awaitable[T], timeout: float | None) -> T:
        """Await ``awaitable`` within ``timeout`` seconds, else Elasticsearch's 408."""
        if timeout is None:
            return await awaitable
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await awaitable
        except TimeoutError:
            if not deadline.expired():
                raise
            raise timeout_error(
                f"Request timed out waiting to be sent after [{format_time_value(timeout)}]"
            ) from None

    def _parse(self, endpoint: Endpoint, body: bytes, parse: Callable[[Any], T]) -> T:
        try:
            return parse(orjson.loads(body))
        except EsError:
            raise
        except (orjson.JSONDecodeError, MalformedResponse, KeyError, IndexError, TypeError, ValueError) as exc:
            raise malformed(endpoint, exc) from None

    def _retrying(self) -> AsyncRetrying:
        return retrying(self.options, self.service_name)

    async def _send(
        self,
        endpoint: Endpoint,
        request: HttpRequest,
        policy: ErrorPolicy,
        default_rpm: int | None,
        truncation: Truncation | None,
        rate_limited: bool = True,
    ) -> bytes:
        """The body of the first successful answer to ``request``."""
        current, may_truncate = request, truncation is not None

        async def attempt() -> bytes:
            nonlocal current, may_truncate
            async with self._open(endpoint, current) as resp:
                body = await self._read(endpoint, resp)
                if 200 <= resp.status < 300:
                    return body
                failure = self._failure(endpoint, current, resp.status, resp.headers, body, policy)
            if may_truncate and policy.too_large(resp.status, error_message(body, policy)):
                assert truncation is not None
                current, may_truncate = truncation.halve(), False
                raise Retry(failure.error if isinstance(failure, Retry) else failure, too_large=True)
            raise failure

        if rate_limited:
            bucket = self.bucket(endpoint, default_rpm)
            if bucket is not None:
                await bucket.acquire()  # once per request: retries are not rate limited again
        try:
            async for try_ in self._retrying():
                with try_:
                    return await attempt()
        except Retry as exc:
            raise exc.error from None
        raise AssertionError("unreachable")

    @staticmethod
    def _failure(
        endpoint: Endpoint,
        req: HttpRequest,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        policy: ErrorPolicy,
    ) -> Exception:
        """The error for a failed answer: a retryable one for 408/429/5xx, else the EsError."""
        error = provider_error(endpoint, status, body, req.url, headers, policy)
        metrics.PROVIDER_ERRORS.labels(endpoint.service, str(status)).inc()
        if (status >= 500 and policy.retry_server_errors) or status in policy.retry_status:
            return Retry(error, retry_after=parse_retry_after(headers.get("Retry-After")))
        return error

    @contextlib.asynccontextmanager
    async def _open(self, endpoint: Endpoint, req: HttpRequest) -> AsyncIterator[aiohttp.ClientResponse]:
        body = req.body()
        headers = dict(req.headers)
        if req.json is not None and req.data is None:
            headers.setdefault("Content-Type", "application/json")
        if req.prepare is not None:
            headers.update(await req.prepare(req, body))
        try:
            url = URL(req.url, encoded=True) if req.encoded else req.url
            async with self.session().request(
                req.method, url, data=body if body else None, headers=headers, allow_redirects=False
            ) as resp:
                yield resp
        except aiohttp.ClientConnectorDNSError:
            raise status_exception(
                400, f"Invalid host [{safe_url(req.url)}], please check that the URL is correct."
            ) from None
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            metrics.PROVIDER_ERRORS.labels(endpoint.service, "connection").inc()
            raise Retry(connection_error(endpoint, exc)) from None

    async def _read(self, endpoint: Endpoint, resp: aiohttp.ClientResponse) -> bytes:
        try:
            return await resp.read()
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            metrics.PROVIDER_ERRORS.labels(endpoint.service, "connection").inc()
            raise Retry(connection_error(endpoint, exc)) from None

    # -- streaming ---------------------------------------------------------------------------
    async def stream_chunks(
        self,
        endpoint: Endpoint,
        request: HttpRequest,
        *,
        timeout: float | None = None,
        policy: ErrorPolicy = DEFAULT_POLICY,
        default_rpm: int | None = None,
    ) -> AsyncIterator[bytes]:
        """Open a streamed response (retrying until it starts, within ``timeout``) and yield its
        body as it arrives, in pieces of any size. Leaving the iteration early closes the
        upstream connection; a connection lost mid-way is Elasticsearch's "interrupted" 500."""
        bucket = self.bucket(endpoint, default_rpm)

        async def start() -> tuple[contextlib.AsyncExitStack, aiohttp.ClientResponse]:
            if bucket is not None:
                await bucket.acquire()
            async for try_ in self._retrying():
                with try_:
                    stack = contextlib.AsyncExitStack()
                    try:
                        resp = await stack.enter_async_context(self._open(endpoint, request))
                        if 200 <= resp.status < 300:
                            return stack, resp
                        body = await self._read(endpoint, resp)
                        raise self._failure(endpoint, request, resp.status, resp.headers, body, policy)
                    except BaseException:
                        await stack.aclose()
                        raise
            raise AssertionError("unreachable")

        try:
            stack, resp = await self.with_deadline(start(), timeout)
        except Retry as exc:
            raise exc.error from None
        async with stack:
            try:
                async for chunk in resp.content.iter_any():
                    yield chunk
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                raise stream_interrupted(endpoint, exc) from None
            finally:
                if not resp.content.at_eof():
                    resp.close()

    def stream_lines(self, endpoint: Endpoint, request: HttpRequest, **options: Any) -> AsyncIterator[bytes]:
        """:meth:`stream_chunks` (same keyword options) cut into lines without line endings."""
        return lines_of(self.stream_chunks(endpoint, request, **options))
