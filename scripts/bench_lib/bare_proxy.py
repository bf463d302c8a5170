"""The least a Python reverse proxy on aiohttp does: read the request, send it to
Elasticsearch with a pooled client, return the response bytes. No routing, middlewares,
metrics, logs or security. Figure 2 runs it beside the sidecar to separate what the HTTP
library and the system calls cost from what the sidecar adds.

Run as ``python -m bench_lib.bare_proxy ES_URL PORT [--gc-tuned]``; ``--gc-tuned`` applies the
sidecar's garbage-collector settings (:mod:`sidecar.gc_tuning`) once started, so that the
comparison isolates what the sidecar's own code costs."""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import web

_SKIP = frozenset(("host", "connection", "keep-alive", "transfer-encoding", "content-length"))


def build(es_url: str, gc_tuned: bool = False) -> web.Application:
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

    async def settle_gc(app: web.Application) -> None:
        from sidecar import gc_tuning

        gc_tuning.settle()

    app.on_startup.append(start)
    if gc_tuned:
        app.on_startup.append(settle_gc)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    es_url, port, gc_tuned = sys.argv[1].rstrip("/"), int(sys.argv[2]), "--gc-tuned" in sys.argv[3:]
    try:
        import uvloop  # the sidecar's default event loop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(build(es_url, gc_tuned), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
