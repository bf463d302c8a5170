"""What every remote inference service shares, written once.

* One pooled :class:`aiohttp.ClientSession` per service, created on first use.
* Connect/read timeouts per attempt, and the caller's ``timeout`` honoured end to end
  (queueing for the rate limit, every attempt and every back-off sleep count against it).
* Retries (tenacity) on connection errors and on 408/429/5xx with exponential back-off and
  jitter, honouring ``Retry-After``; other 4xx are not retried. Elasticsearch's timing is the
  default: first delay up to 1 s, delay bound capped at 5 s, at most 3 attempts and 30 s.
* A per-endpoint ``rate_limit.requests_per_minute`` token bucket shared by every request of
  that endpoint in the process; requests queue for a token instead of failing.
* Provider HTTP errors become Elasticsearch-shaped :class:`EsError` s with the provider's status
  and message (``Received an authentication error status code for request from inference
  entity id [id] status [401]. Error message: [...]``). Secrets are scrubbed from every message.
* Malformed responses become a clear 500 error, never a crash or a half result.
* "Content too large" answers are retried once with every input cut in half, as
  Elasticsearch does; the result reports which inputs were truncated.
* Raw, line, SSE and NDJSON readers for streamed responses; closing the iterator (or
  cancelling the task that reads it) closes the upstream connection.

Tuning (all in seconds): ``ServiceContext.extras["http"]`` (a dict or :class:`HttpOptions`) or
the environment variables ``SIDECAR_HTTP_RETRY_INITIAL_DELAY``, ``SIDECAR_HTTP_RETRY_MAX_DELAY``,
``SIDECAR_HTTP_RETRY_TIMEOUT``, ``SIDECAR_HTTP_MAX_ATTEMPTS``, ``SIDECAR_HTTP_CONNECT_TIMEOUT``,
``SIDECAR_HTTP_READ_TIMEOUT``.

Base URLs that Elasticsearch hard-codes can be redirected (tests, proxies, private gateways):
``ServiceContext.extras["provider_urls"][<service name>]`` or the environment variable
``SIDECAR_PROVIDER_URL_<SERVICE_NAME_UPPER_WITH_UNDERSCORES>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar

import aiohttp
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)
from yarl import URL

from .. import metrics
from ..errors import EsError, status_exception
from ..errors import timeout as timeout_error
from ._chat import parse_chat_request, stream_inputs
from ._common import SERVICE, TASK, drop_none, put_set, secrets
from .base import DenseEmbeddings, Endpoint, InputType, ParsedConfig, RankedDoc, Service, TaskType
from .settings import SettingsReader, finish

T = TypeVar("T")

# Message prefixes of Elasticsearch's BaseResponseHandler.
SERVER_ERROR = "Received a server error status code"
SERVER_BUSY = "Received a server busy error status code"
RATE_LIMIT = "Received a rate limit status code"
AUTHENTICATION = "Received an authentication error status code"
PERMISSION_DENIED = "Received a permission denied error status code"
REDIRECTION = "Unhandled redirection"
CONTENT_TOO_LARGE = "Received a content too large status code"
UNSUCCESSFUL = "Received an unsuccessful status code"
BAD_REQUEST = "Received a bad request status code"
INPUT_VALIDATION = "Received an input validation error response"
REQUEST_TIMEOUT = "Received a request timeout status code"

# Besides every 5xx.
RETRYABLE_STATUS = frozenset({408, 429})


# -- options -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpOptions:
    """Timing of remote calls; Elasticsearch's defaults."""

    initial_delay: float = 1.0  # xpack.inference.http.retry.initial_delay
    max_delay: float = 5.0  # xpack.inference.http.retry.max_delay_bound
    retry_timeout: float = 30.0  # xpack.inference.http.retry.timeout
    max_attempts: int = 3
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    # The longest Retry-After honoured; longer values are cut to this.
    max_retry_after: float = 30.0
    max_connections: int = 256

    _ENV: ClassVar[dict[str, str]] = {
        "initial_delay": "SIDECAR_HTTP_RETRY_INITIAL_DELAY",
        "max_delay": "SIDECAR_HTTP_RETRY_MAX_DELAY",
        "retry_timeout": "SIDECAR_HTTP_RETRY_TIMEOUT",
        "max_attempts": "SIDECAR_HTTP_MAX_ATTEMPTS",
        "connect_timeout": "SIDECAR_HTTP_CONNECT_TIMEOUT",
        "read_timeout": "SIDECAR_HTTP_READ_TIMEOUT",
    }

    @classmethod
    def from_context(cls, context: Any) -> HttpOptions:
        values: dict[str, Any] = {}
        for name, env in cls._ENV.items():
            raw = os.environ.get(env)
            if raw:
                values[name] = int(raw) if name == "max_attempts" else float(raw)
        extras = getattr(context, "extras", None) or {}
        given = extras.get("http")
        if isinstance(given, HttpOptions):
            return replace(given, **values) if values else given
        if isinstance(given, Mapping):
            known = {f.name for f in fields(cls)}
            values.update({k: v for k, v in given.items() if k in known})
        return cls(**values)


def provider_url(context: Any, service_name: str, default: str) -> str:
    """Base URL for a provider whose URL Elasticsearch hard-codes (see module docstring)."""
    extras = getattr(context, "extras", None) or {}
    override = (extras.get("provider_urls") or {}).get(service_name)
    if not override:
        override = os.environ.get("SIDECAR_PROVIDER_URL_" + service_name.upper().replace("-", "_"))
    return (override or default).rstrip("/")


def format_time_value(seconds: float) -> str:
    """Render a duration like Elasticsearch's ``TimeValue.toString()`` (``30s``, ``1.5s``, ``100ms``)."""
    nanos = seconds * 1e9
    for unit, size in (("d", 86400e9), ("h", 3600e9), ("m", 60e9), ("s", 1e9), ("ms", 1e6), ("micros", 1e3)):
        if nanos >= size:
            value = round(nanos / size, 1)
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
    return f"{int(nanos)}nanos"


def safe_url(url: str | URL) -> str:
    """A URL fit for messages: no query string, no credentials (keys ride in queries)."""
    u = URL(str(url))
    return str(u.with_query(None).with_fragment(None).with_user(None).with_password(None))


# -- errors ------------------------------------------------------------------------------------


class MalformedResponse(Exception):
    """Raised by response parsers; becomes a 500 naming the endpoint."""


def require(obj: Any, key: str | int, kind: type | tuple[type, ...], context: str) -> Any:
    """``obj[key]`` checked to be a ``kind`` (ints count as floats), else :class:`MalformedResponse`."""
    try:
        value = obj[key]
    except (KeyError, IndexError, TypeError):
        raise MalformedResponse(f"Failed to find required field [{key}] in {context}") from None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise MalformedResponse(f"Field [{key}] in {context} has an unexpected type")
    return value


def float_vectors(rows: Any, context: str) -> list[list[float]]:
    """A list of numeric vectors, checked."""
    if not isinstance(rows, list):
        raise MalformedResponse(f"Expected a list of embeddings in {context}")
    out = []
    for row in rows:
        if not isinstance(row, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in row
        ):
            raise MalformedResponse(f"Expected an embedding as a list of numbers in {context}")
        out.append(row)
    return out


def _document_text(item: dict[str, Any]) -> Any:
    document = item.get("document")
    if isinstance(document, dict):
        return document.get("text")
    return document if document is not None else item.get("text")


def ranked_docs(
    items: Any,
    inputs: Sequence[str],
    context: str,
    *,
    with_text: bool,
    score_keys: tuple[str, ...] = ("relevance_score",),
    index_key: str = "index",
    text_of: Callable[[dict[str, Any]], Any] = _document_text,
    top_n: int | None = None,
) -> list[RankedDoc]:
    """A provider's ranked items as :class:`RankedDoc` s, best first (at most ``top_n``). The
    index may be a number or a numeric string; with ``with_text`` the text is the provider's
    (``text_of``) or else the input's."""
    if not isinstance(items, list):
        raise MalformedResponse(f"Expected a list of ranked documents in {context}")
    docs = []
    for item in items:
        raw = require(item, index_key, (int, str), context)
        if isinstance(raw, str) and not raw.isdigit():
            raise MalformedResponse(f"Field [{index_key}] in {context} is not a document number")
        index = int(raw)
        if not 0 <= index < len(inputs):
            raise MalformedResponse(f"Index [{index}] in {context} is out of range")
        key = next((k for k in score_keys if k in item), score_keys[0])
        score = float(require(item, key, float, context))
        text = None
        if with_text:
            given = text_of(item)
            text = given if isinstance(given, str) else inputs[index]
        docs.append(RankedDoc(index=index, relevance_score=score, text=text))
    docs.sort(key=lambda d: d.relevance_score, reverse=True)
    return docs[:top_n] if top_n else docs


def extract_error_message(body: Any) -> str | None:
    """The human message in a provider's error body, whatever its shape."""
    if isinstance(body, str):
        return body or None
    if isinstance(body, list) and body:
        return extract_error_message(body[0])
    if not isinstance(body, dict):
        return None
    for key in ("error", "errors", "detail", "message", "Message", "error_message", "msg"):
        if key not in body:
            continue
        value = body[key]
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict | list):
            found = extract_error_message(value)
            if found:
                return found
    return None


@dataclass(frozen=True)
class ErrorPolicy:
    """How one provider's failure statuses read. ``messages`` overrides the prefix per status;
    ``too_large`` recognises a "content too large" answer (retried once with halved inputs)."""

    messages: Mapping[int, str] = field(default_factory=dict)
    extract: Callable[[Any], str | None] = extract_error_message
    too_large: Callable[[int, str | None], bool] = lambda status, message: status == 413
    rate_limit_detail: Callable[[Mapping[str, str]], str | None] | None = None
    retry_status: frozenset[int] = RETRYABLE_STATUS
    # (status, provider message) -> a prefix that wins over everything else, or None.
    refine: Callable[[int, str | None], str | None] | None = None

    def prefix(self, status: int, url: str, headers: Mapping[str, str], message: str | None = None) -> str:
        refined = self.refine(status, message) if self.refine else None
        if refined:
            return refined
        if status in self.messages:
            return self.messages[status]
        if status == 429:
            detail = self.rate_limit_detail(headers) if self.rate_limit_detail else None
            return f"{RATE_LIMIT}. {detail}" if detail else RATE_LIMIT
        if status == 408:
            return REQUEST_TIMEOUT
        if status >= 500:
            return SERVER_ERROR
        if status == 413:
            return CONTENT_TOO_LARGE
        if status == 401:
            return AUTHENTICATION
        if status == 403:
            return PERMISSION_DENIED
        if 300 <= status < 400:
            return REDIRECTION
        if status == 404:
            return f"Resource not found at [{safe_url(url)}]"
        return UNSUCCESSFUL


DEFAULT_POLICY = ErrorPolicy()


def es_status(provider_status: int) -> int:
    """Elasticsearch's ``toRestStatus``: 4xx pass through, anything else reads as 400."""
    return provider_status if 300 <= provider_status < 500 else 400


class Redactor:
    """Removes secret values from text before it reaches a message or a log."""

    def __init__(self, secrets: Mapping[str, Any] | None) -> None:
        values: list[str] = []
        for value in (secrets or {}).values():
            if isinstance(value, str) and len(value) >= 4:
                values.append(value)
            elif isinstance(value, Mapping):
                values.extend(v for v in value.values() if isinstance(v, str) and len(v) >= 4)
        self.values = sorted(set(values), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, "[REDACTED]")
        return text


def provider_error(
    endpoint: Endpoint,
    status: int,
    body: bytes,
    url: str,
    headers: Mapping[str, str],
    policy: ErrorPolicy = DEFAULT_POLICY,
) -> EsError:
    message = _error_message(body, policy)
    prefix = policy.prefix(status, url, headers, message)
    reason = f"{prefix} for request from inference entity id [{endpoint.inference_id}] status [{status}]"
    if message:
        reason += f". Error message: [{message}]"
    return status_exception(es_status(status), Redactor(endpoint.secrets)(reason))


def _error_message(body: bytes, policy: ErrorPolicy) -> str | None:
    if not body:
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    try:
        message = policy.extract(parsed)
    except Exception:  # a provider's odd error body must never hide the status
        message = None
    return message if isinstance(message, str) and message else None


class _Retry(Exception):
    """One failed attempt that may be retried."""

    def __init__(self, error: EsError, retry_after: float | None = None, too_large: bool = False) -> None:
        super().__init__(error.reason)
        self.error = error
        self.retry_after = retry_after
        self.too_large = too_large


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# -- requests ----------------------------------------------------------------------------------


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


class TokenBucket:
    """``per_minute`` tokens a minute, at most ``capacity`` saved up; waiters queue in order."""

    def __init__(self, per_minute: float, capacity: float = 1.0) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, capacity)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self.tokens) / self.rate)


class TokenCache:
    """Short-lived access tokens (OAuth, IAM) per credential, fetched once and reused until a
    minute before they expire; concurrent callers share one fetch."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """``fetch`` returns (token, lifetime in seconds)."""
        async with self._locks.setdefault(key, asyncio.Lock()):
            token, expires = self._tokens.get(key, ("", 0.0))
            if time.time() > expires - 60:
                token, lifetime = await fetch()
                self._tokens[key] = (token, time.time() + lifetime)
            return token


def token_lifetime(obj: Any, default: float = 3600.0) -> float:
    value = obj.get("expires_in") if isinstance(obj, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


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
        opts = self.options
        return AsyncRetrying(
            stop=stop_after_attempt(opts.max_attempts) | stop_after_delay(opts.retry_timeout),
            wait=self._wait,
            retry=retry_if_exception_type(_Retry),
            reraise=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        """Full jitter under a doubling bound (Elasticsearch's RetryableAction), at least the
        provider's Retry-After, never past the retry timeout."""
        metrics.PROVIDER_RETRIES.labels(self.service_name).inc()
        opts = self.options
        bound = min(opts.max_delay, opts.initial_delay * (2 ** max(0, state.attempt_number - 1)))
        delay = random.uniform(0, bound)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry):
            if exc.too_large:
                return 0.0
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, opts.max_retry_after))
        left = opts.retry_timeout - (state.seconds_since_start or 0.0)
        return max(0.0, min(delay, left))

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
            if may_truncate and policy.too_large(resp.status, _error_message(body, policy)):
                assert truncation is not None
                current, may_truncate = truncation.halve(), False
                raise _Retry(failure.error if isinstance(failure, _Retry) else failure, too_large=True)
            raise failure

        if rate_limited:
            bucket = self.bucket(endpoint, default_rpm)
            if bucket is not None:
                await bucket.acquire()  # once per request: retries are not rate limited again
        try:
            async for try_ in self._retrying():
                with try_:
                    return await attempt()
        except _Retry as exc:
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
        if status >= 500 or status in policy.retry_status:
            return _Retry(error, retry_after=_parse_retry_after(headers.get("Retry-After")))
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
            raise _Retry(connection_error(endpoint, exc)) from None

    async def _read(self, endpoint: Endpoint, resp: aiohttp.ClientResponse) -> bytes:
        try:
            return await resp.read()
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            metrics.PROVIDER_ERRORS.labels(endpoint.service, "connection").inc()
            raise _Retry(connection_error(endpoint, exc)) from None

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
        except _Retry as exc:
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

    async def stream_lines(self, endpoint: Endpoint, request: HttpRequest, **options: Any) -> AsyncIterator[bytes]:
        """:meth:`stream_chunks` (same keyword options) cut into lines without line endings."""
        chunks = self.stream_chunks(endpoint, request, **options)
        async with contextlib.aclosing(chunks):
            buffer = b""
            async for chunk in chunks:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    yield line.rstrip(b"\r")
            if buffer:
                yield buffer.rstrip(b"\r")


def connection_error(endpoint: Endpoint, exc: BaseException) -> EsError:
    kind = "timed out" if isinstance(exc, TimeoutError) else f"failed [{type(exc).__name__}]"
    return status_exception(
        500, f"Http client failed to send request from inference entity id [{endpoint.inference_id}]: {kind}"
    )


def stream_interrupted(endpoint: Endpoint, exc: BaseException) -> EsError:
    return status_exception(
        500,
        f"The streamed response for inference entity id [{endpoint.inference_id}] was interrupted "
        f"[{type(exc).__name__}]",
    )


def stream_error(endpoint: Endpoint, obj: dict[str, Any]) -> EsError:
    message = extract_error_message(obj) or "unknown error"
    return EsError(
        500,
        "status_exception",
        Redactor(endpoint.secrets)(
            f"Received an error response for request from inference entity id [{endpoint.inference_id}]. "
            f"Error message: [{message}]"
        ),
    )


def malformed(endpoint: Endpoint, exc: BaseException) -> EsError:
    if isinstance(exc, orjson.JSONDecodeError):
        detail = "the response is not valid JSON"
    else:
        detail = str(exc) or type(exc).__name__
    return EsError(
        500,
        "illegal_state_exception",
        Redactor(endpoint.secrets)(
            f"Failed to parse the response for inference entity id [{endpoint.inference_id}]: {detail}"
        ),
    )


# -- streamed formats --------------------------------------------------------------------------


@dataclass
class SseEvent:
    event: str
    data: str


async def sse_events(lines: AsyncIterator[bytes]) -> AsyncIterator[SseEvent]:
    """Server-Sent Events per the HTML spec (``event:``/``data:`` fields, blank line ends one)."""
    event, data, first = "message", [], True
    async for raw in lines:
        line = raw.decode("utf-8", errors="replace")
        if first:
            line, first = line.removeprefix("\ufeff"), False
        if not line:
            if data:
                yield SseEvent(event, "\n".join(data))
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value or "message"
    if data:
        yield SseEvent(event, "\n".join(data))


async def ndjson_objects(lines: AsyncIterator[bytes]) -> AsyncIterator[Any]:
    async for line in lines:
        if line.strip():
            yield orjson.loads(line)


def json_event(endpoint: Endpoint, text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise malformed(endpoint, exc) from None


# -- batching ----------------------------------------------------------------------------------


async def map_batches(
    inputs: Sequence[str],
    size: int,
    run: Callable[[list[str]], Awaitable[list[T]]],
    *,
    concurrency: int = 4,
) -> list[T]:
    """Split ``inputs`` into batches of ``size``, run them (concurrently up to ``concurrency``)
    and return the results in input order. The first failure cancels the rest and is raised."""
    batches = [list(inputs[i : i + size]) for i in range(0, len(inputs), size)] or [[]]
    if len(batches) == 1:
        return await run(batches[0])
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(batch: list[str]) -> list[T]:
        async with gate:
            return await run(batch)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(b)) for b in batches]
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return [item for task in tasks for item in task.result()]


# -- the remote service base -------------------------------------------------------------------


class RemoteService(Service):
    """Base of services that call a provider over HTTP: owns the :class:`HttpClient` and
    parses configurations in Elasticsearch's order (service settings, task settings, secrets,
    then unknown keys). Subclasses implement :meth:`read_service_settings` and, where they
    have task settings, :meth:`read_task_settings`."""

    # Default requests per minute per task type (None: no limit).
    default_rpm: ClassVar[dict[TaskType, int]] = {}
    # (``batch_size``, from the base class, is also the largest input list one upstream
    # call takes: longer lists are split.)
    # Similarity filled in for text embedding endpoints that name none.
    default_similarity: ClassVar[str | None] = "dot_product"

    # Task types whose results can be streamed (``_stream``).
    streaming_tasks: ClassVar[tuple[TaskType, ...]] = ()
    # Keys kept in service_settings for the service's own use that Elasticsearch persists but
    # never shows (the endpoint layer should leave them out of GET/PUT responses).
    hidden_service_keys: ClassVar[tuple[str, ...]] = ("dimensions_set_by_user",)

    def __init__(self, context: Any = None) -> None:
        self.context = context
        self.http = HttpClient(self.name, context)

    # -- configuration -----------------------------------------------------------------------
    def parse(
        self,
        inference_id: str,
        task_type: TaskType,
        service_settings: dict[str, Any],
        task_settings: dict[str, Any],
    ) -> ParsedConfig:
        self.check_task_type(task_type)
        ss = SettingsReader(service_settings, SERVICE)
        settings = self.read_service_settings(task_type, ss)
        ss.raise_if_errors()
        ts = SettingsReader(task_settings, TASK)
        task = self.read_task_settings(task_type, ts)
        ts.raise_if_errors()
        secret = self.read_secrets(task_type, ss)
        finish(self.name, ss, ts)
        return ParsedConfig(drop_none(settings), drop_none(task), secret)

    def parse_task_settings(self, task_type: TaskType, task_settings: dict[str, Any]) -> dict[str, Any]:
        ts = SettingsReader(task_settings, TASK)
        task = self.read_task_settings(task_type, ts)
        finish(self.name, ts)
        return drop_none(task)

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        raise NotImplementedError

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        return {}

    def read_secrets(self, task_type: TaskType, ss: SettingsReader) -> dict[str, str]:
        return secrets(ss)

    async def close(self) -> None:
        await self.http.close()

    def rpm(self, task_type: TaskType) -> int | None:
        return self.default_rpm.get(task_type)

    def base_url(self, default: str) -> str:
        return provider_url(self.context, self.name, default)

    async def call(
        self,
        endpoint: Endpoint,
        request: HttpRequest,
        parse: Callable[[Any], T],
        *,
        timeout: float | None,
        policy: ErrorPolicy = DEFAULT_POLICY,
        truncation: Truncation | None = None,
    ) -> T:
        return await self.http.call(
            endpoint,
            request,
            parse,
            timeout=timeout,
            policy=policy,
            default_rpm=self.rpm(endpoint.task_type),
            truncation=truncation,
        )

    def lines(
        self,
        endpoint: Endpoint,
        request: HttpRequest,
        *,
        timeout: float | None,
        policy: ErrorPolicy = DEFAULT_POLICY,
    ) -> AsyncIterator[bytes]:
        return self.http.stream_lines(
            endpoint, request, timeout=timeout, policy=policy, default_rpm=self.rpm(endpoint.task_type)
        )

    async def run_batches(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        build: Callable[[list[str]], HttpRequest],
        parse: Callable[[Any], list[T]],
        *,
        timeout: float | None,
        policy: ErrorPolicy = DEFAULT_POLICY,
        truncate: bool = False,
        batch_size: int | None = None,
    ) -> list[tuple[T, bool]]:
        """One call per batch of at most ``batch_size`` inputs (concurrently), results in input
        order, each with whether its input was truncated; ``timeout`` covers all batches."""
        if not inputs:
            return []

        async def run(batch: list[str]) -> list[tuple[T, bool]]:
            cut = Truncation(batch, build) if truncate else None
            results = await self.call(endpoint, build(batch), parse, timeout=None, policy=policy, truncation=cut)
            if len(results) != len(batch):
                raise malformed(
                    endpoint, MalformedResponse(f"expected [{len(batch)}] results, received [{len(results)}]")
                )
            flags = cut.flags if cut is not None and cut.flags else [False] * len(batch)
            return list(zip(results, flags, strict=True))

        return await self.http.with_deadline(map_batches(inputs, batch_size or self.batch_size, run), timeout)

    async def embed_batches(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        build: Callable[[list[str]], HttpRequest],
        parse: Callable[[Any], list[list[float]]],
        *,
        timeout: float | None,
        policy: ErrorPolicy = DEFAULT_POLICY,
        element_type: str = "float",
        truncate: bool = False,
        batch_size: int | None = None,
    ) -> DenseEmbeddings:
        pairs = await self.run_batches(
            endpoint, inputs, build, parse, timeout=timeout, policy=policy, truncate=truncate, batch_size=batch_size
        )
        flags = [flag for _, flag in pairs]
        return DenseEmbeddings(
            vectors=[vector for vector, _ in pairs], element_type=element_type, truncated=flags if any(flags) else None
        )

    # -- streaming ---------------------------------------------------------------------------
    def stream(
        self, endpoint: Endpoint, request: dict[str, Any], timeout: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Validate ``request`` now (errors raise before any event) and return the event
        iterator. ``completion``: ``{"input": str | [str], "task_settings"?: {...}}``;
        ``chat_completion``: the OpenAI-style chat request."""
        if endpoint.task_type not in self.streaming_tasks:
            if not self.streaming_tasks:
                raise EsError(405, "status_exception", f"Streaming is not allowed for service [{self.name}].")
            supported = ",".join(t.value for t in self.streaming_tasks)
            raise EsError(
                405,
                "status_exception",
                f"Streaming is not allowed for service [{self.name}] and task [{endpoint.task_type.value}]. "
                f"Supported tasks: [{supported}]",
            )
        if endpoint.task_type == TaskType.CHAT_COMPLETION:
            return self.stream_chat(endpoint, parse_chat_request(request), timeout)
        inputs = stream_inputs(request)
        override = self.parse_task_settings_override(endpoint.task_type, request.get("task_settings") or {})
        settings = self.effective_task_settings(endpoint, override)
        return self.stream_completion(endpoint, inputs, settings, timeout)

    def stream_completion(
        self, endpoint: Endpoint, inputs: list[str], task_settings: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError

    def stream_chat(
        self, endpoint: Endpoint, request: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError

    @staticmethod
    def effective_task_settings(endpoint: Endpoint, task_settings: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**endpoint.task_settings, **(task_settings or {})}

    async def probe_dimensions(self, endpoint: Endpoint) -> tuple[int, str | None]:
        result: DenseEmbeddings = await self.embed(endpoint, ["how big"], InputType.INGEST, endpoint.task_settings)
        if len(result.vectors) == 0:
            raise status_exception(
                400, "Could not determine embedding size. Please check your inference endpoint configuration"
            )
        dims = len(result.vectors[0])
        if result.element_type == "bit":
            dims *= 8
        settings = endpoint.service_settings
        wanted = settings.get("dimensions")
        if settings.get("dimensions_set_by_user") and wanted is not None and wanted != dims:
            raise status_exception(
                400,
                f"The retrieved embeddings size [{dims}] does not match the size specified in the settings "
                f"[{wanted}]. Please recreate the [{endpoint.inference_id}] configuration with the correct dimensions",
            )
        return dims, settings.get("similarity") or self.default_similarity


class DocumentsRerankService(RemoteService):
    """A service whose ``rerank`` takes ``{"model", "query", "documents"}`` (plus the task
    settings named in :attr:`rerank_task_keys` that are set) on its ``rerank`` route and
    answers ``results`` (or ``data``) of ``{index, relevance_score, document}`` items:
    Cohere, Jina AI, Voyage AI. Subclasses build requests with ``_request(endpoint, route, body)``."""

    rerank_task_keys: ClassVar[tuple[str, ...]] = ("top_n", "return_documents")
    policy: ClassVar[ErrorPolicy] = DEFAULT_POLICY

    def _request(self, endpoint: Endpoint, route: str, body: dict[str, Any]) -> HttpRequest:
        raise NotImplementedError

    def rerank_settings(self, endpoint: Endpoint, task_settings: dict[str, Any]) -> dict[str, Any]:
        """The task settings one rerank call uses."""
        return self.effective_task_settings(endpoint, task_settings)

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        settings = self.rerank_settings(endpoint, task_settings)
        body = {"model": endpoint.service_settings.get("model_id"), "query": query, "documents": list(inputs)}
        request = self._request(endpoint, "rerank", put_set(body, settings, *self.rerank_task_keys))
        context = f"{self.display_name} rerank response"

        def parse(obj: Any) -> list[RankedDoc]:
            items = obj.get("results", obj.get("data")) if isinstance(obj, dict) else None
            if items is None:
                raise MalformedResponse(f"Failed to find required field [results] in {context}")
            return ranked_docs(items, inputs, context, with_text=bool(settings.get("return_documents")))

        return await self.call(endpoint, request, parse, timeout=timeout, policy=self.policy)
