"""How remote calls are timed (Elasticsearch's defaults, tunable per process), where a provider
whose URL Elasticsearch hard-codes is reached, and how durations and URLs read in messages."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from yarl import URL


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
