"""The body of a fenced request, as the handlers read it.

The fence checks ``_bulk`` and ``_msearch`` bodies line by line while they stream through
(:class:`FencedPayload`), and serves other bodies it had to read in full again
(:class:`ReplayPayload`). Both stand in for the request's ``StreamReader`` with the methods
the handlers and the pass-through use, and are put in its place by :func:`replace_body`.

Why a stand-in, and why it is swapped in through aiohttp's private fields: aiohttp has no
supported way to give a request another body. ``BaseRequest.clone()`` takes no payload, and
``StreamReader`` is documented as never to be created by user code (it needs the connection's
protocol for flow control). A middleware can only hand the handler the same request, so the
checked stream must become that request's ``content``. :func:`replace_body` sets
``_payload`` (what ``read()``/``post()`` read) and the cached ``content`` property, and fails
closed, refusing the request, if the swap ever stops taking effect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from ..errors import EsError

# The longest ``_bulk`` action line / ``_msearch`` line the fence checks; longer ones are refused.
MAX_CHECKED_LINE = 4 * 1024 * 1024


def forbidden(reason: str) -> EsError:
    return EsError(403, "security_exception", reason)


class Violation:
    """Holds the first violation found while a body streams through (the forwarding may
    turn it into another error before it reaches the caller)."""

    error: EsError | None = None


class FencedPayload:
    """Stands in for ``request.content``: passes the caller's NDJSON body through unchanged,
    checking each ``_bulk`` action line (or every ``_msearch`` line) before it is released."""

    def __init__(self, source: Any, check: Callable[[bytes], bool], violation: Violation) -> None:
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
                    raise self._fail(forbidden("a line of the request body is too long to be checked"))
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


def replace_body(request: web.Request, payload: FencedPayload) -> None:
    """Make ``payload`` the request's body stream for the handlers (aiohttp keeps it in
    ``_payload`` and caches ``content`` on first use). Fails closed if that ever stops working."""
    request._payload = payload
    request._cache["content"] = payload
    if request.content is not payload:
        raise EsError(500, "exception", "the sidecar cannot check this request body")
