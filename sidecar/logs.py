"""Structured logs: one JSON object per line, secrets never included."""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from time import time as _now

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


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def _timestamp(created: float) -> str:
    global _second
    second = int(created)
    cached = _second  # one read: other threads may replace it meanwhile
    if cached[0] != second:  # strftime once a second, not once a line
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int(created * 1000) % 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "@timestamp": _timestamp(record.created),
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


class BufferedStderr:
    """stderr behind a buffer: a log line per request would otherwise cost a system call
    each. Lines are written out at least every :attr:`interval` seconds, at once for
    warnings and errors (with everything logged before them, so order is kept), and at exit."""

    def __init__(self, fd: int = 2, interval: float = 0.2, size: int = 64 * 1024) -> None:
        self._out = open(fd, "wb", buffering=size, closefd=False)  # noqa: SIM115
        self._lock = threading.Lock()
        self._dirty = False
        self.interval = interval
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="log-flush", daemon=True)
        self._flusher.start()
        atexit.register(self.close)

    def write(self, line: bytes, *, urgent: bool = False) -> None:
        with self._lock:
            try:
                self._out.write(line)
                if urgent:
                    self._out.flush()
                    self._dirty = False
                else:
                    self._dirty = True
            except (OSError, ValueError):
                pass  # stderr closed: nothing else to do with a log line

    def flush(self) -> None:
        with self._lock:
            if self._dirty:
                try:
                    self._out.flush()
                except (OSError, ValueError):
                    pass
                self._dirty = False

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()


class JsonLinesHandler(logging.Handler):
    def __init__(self, out: BufferedStderr) -> None:
        super().__init__()
        self.out = out
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).encode() + b"\n"
        except Exception:  # a broken log call must not break the request that made it
            self.handleError(record)
            return
        self.out.write(line, urgent=record.levelno >= logging.WARNING)

    def flush(self) -> None:
        self.out.flush()


_output: BufferedStderr | None = None


def setup(level: str = "INFO") -> None:
    global _output
    if _output is None:
        _output = BufferedStderr()
    root = logging.getLogger()
    root.handlers[:] = [JsonLinesHandler(_output)]
    root.setLevel(level.upper())
    for noisy in ("elastic_transport", "urllib3", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class AccessLogger(AbstractAccessLogger):
    """One JSON line per request; no headers or bodies (they can hold credentials). Written
    straight to the log output: going through ``logging`` costs ~6× more per request.
    Responses of the classes in :attr:`unlogged` are left out."""

    unlogged: tuple[type, ...] = ()

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:  # noqa: A002
        if isinstance(response, self.unlogged) or not self.logger.isEnabledFor(logging.INFO):
            return
        line = orjson.dumps(
            {
                "@timestamp": _timestamp(_now()),
                "log.level": "INFO",
                "log.logger": self.logger.name,
                "message": "request",
                "http.request.method": request.method,
                "url.path": request.path,
                "http.response.status_code": response.status,
                "event.duration_ms": round(time * 1000, 3),
                "client.address": request.remote,
            }
        )
        if _output is not None:
            _output.write(line + b"\n")
        else:
            self.logger.info(line.decode())

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def access_logger(mode: str, passed_through: tuple[type, ...]) -> type[AccessLogger] | None:
    """The access logger for ``--access-log``: ``all``, ``sidecar`` (responses of the classes in
    ``passed_through``, Elasticsearch's own answers, left out) or ``off`` (None)."""
    if mode == "off":
        return None
    if mode == "all":
        return AccessLogger
    return type("SidecarAccessLogger", (AccessLogger,), {"unlogged": passed_through})
