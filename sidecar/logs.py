"""Structured logs: one JSON object per line, secrets never included."""

from __future__ import annotations

import logging
import re
import sys
import time

import orjson
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

# Values that look like credentials are masked wherever they appear in a message.
_SECRET_PATTERNS = [
    re.compile(r"(?i)(authorization|api[-_]?key|x-api-key|api-key|secret[-_]?key|access[-_]?key|password|token)"
               r"([\"']?\s*[:=]\s*[\"']?)([^\"',\s}]+)"),
    re.compile(r"(?i)(Bearer|Basic|ApiKey)\s+[A-Za-z0-9._~+/=-]+"),
]


def redact(text: str) -> str:
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}[REDACTED]", text)
    return _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)} [REDACTED]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "log.level": record.levelname,
            "log.logger": record.name,
            "message": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["error.type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["error.stack_trace"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("elastic_transport", "urllib3", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class AccessLogger(AbstractAccessLogger):
    """One JSON line per request; no headers or bodies (they can hold credentials)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:  # noqa: A002
        self.logger.info(
            "request",
            extra={
                "fields": {
                    "http.request.method": request.method,
                    "url.path": request.path,
                    "http.response.status_code": response.status,
                    "event.duration_ms": round(time * 1000, 3),
                    "client.address": request.remote,
                }
            },
        )
