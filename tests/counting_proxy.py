"""A loopback HTTP proxy in front of Elasticsearch that records every request, to count
the round trips the sidecar makes."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class CountingProxy:
    """Forwards every request to Elasticsearch and records ``(method, path)``. While
    ``hold`` is set, answers to GETs whose path contains ``held_path`` are fetched from
    Elasticsearch at once but delivered only when ``release`` is called."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.seen: list[tuple[str, str]] = []
        self.held_path: str | None = None
        self.held = asyncio.Event()  # set when a held answer is waiting
        self._gate = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, method: str, path_part: str) -> int:
        return sum(1 for m, p in self.seen if m == method and path_part in p)

    def hold(self, path_part: str) -> None:
        self.held_path = path_part
        self.held.clear()
        self._gate.clear()

    async def wait_for_count(self, method: str, path_part: str, count: int) -> None:
        async def reached() -> None:
            while self.count(method, path_part) < count:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(reached(), 30)

    def release(self) -> None:
        self.held_path = None
        self._gate.set()

    async def _forward(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        assert self._session is not None
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=await request.read(), headers=headers
        ) as upstream:
            body = await upstream.read()
            reply_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            status = upstream.status
        if self.held_path is not None and request.method == "GET" and self.held_path in request.path:
            self.held.set()
            await self._gate.wait()
        return web.Response(status=status, body=body, headers=reply_headers)

    async def start(self) -> None:
        self._session = self._session or aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop_listening(self) -> None:
        """Elasticsearch appears down: connections are refused until :meth:`start`."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        self.release()
        await self.stop_listening()
        if self._session is not None:
            await self._session.close()
