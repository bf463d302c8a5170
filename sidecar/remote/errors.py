"""How a provider's failures read: Elasticsearch's messages per status (per provider where they
differ), its status mapping, and secrets scrubbed from every message."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import EsError, status_exception
from ..protocol.service import Endpoint
from .options import safe_url

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
    # Whether 5xx answers are retried (every provider but ``custom``, which reports them at once).
    retry_server_errors: bool = True
    # (status, provider message) -> a prefix that wins over everything else, or None.
    refine: Callable[[int, str | None], str | None] | None = None
    # (endpoint, status, body, headers) -> the whole error, for a provider whose failures
    # Elasticsearch words its own way (secrets are the builder's to scrub).
    render: Callable[[Endpoint, int, bytes, Mapping[str, str]], EsError] | None = None

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
    if policy.render is not None:
        return policy.render(endpoint, status, body, headers)
    message = error_message(body, policy)
    prefix = policy.prefix(status, url, headers, message)
    reason = f"{prefix} for request from inference entity id [{endpoint.inference_id}] status [{status}]"
    if message:
        reason += f". Error message: [{message}]"
    return status_exception(es_status(status), Redactor(endpoint.secrets)(reason))


def error_message(body: bytes, policy: ErrorPolicy) -> str | None:
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
