"""The least a Python reverse proxy on aiohttp does: read the request, send it to
Elasticsearch with a pooled client, return the response bytes. No routing, middlewares,
metrics, logs or security. Figure 2 runs it beside the sidecar to separate what the HTTP
library and the system calls cost from what the sidecar adds.

Run as ``python -m bench_lib.bare_proxy ES_URL PORT``."""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import web

_SKIP = frozenset(("host", "connection", "keep-alive", "transfer-encoding", "content-length"))


def build(es_url: str) -> web.Application:
    app = web.Application()

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256), auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"))

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read() if request.body_exists else None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP}
        async with request.app["session"].request(request.method, es_url + request.raw_path, data=body,
                                                  headers=headers, allow_redirects=False) as upstream:
            data = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP}
            return web.Response(body=data, status=upstream.status, headers=out)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    es_url, port = sys.argv[1].rstrip("/"), int(sys.argv[2])
    try:
        import uvloop  # the sidecar's default event loop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(build(es_url), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
