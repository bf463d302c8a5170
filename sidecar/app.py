"""The aiohttp application: sidecar routes first, everything else proxied to Elasticsearch."""

from __future__ import annotations

import logging
import ssl

from aiohttp import web

from . import security
from .api import health, inference, mappings, ops, pipelines, reindex, root, search, writes
from .api.compat import MEDIA_TYPE_CHECK, MediaTypeCheck, node_media_types
from .api.middleware import es_errors
from .config import Config
from .proxy import Upstream, proxy_handler

log = logging.getLogger("sidecar")

# The largest body the sidecar itself parses (its own APIs); proxied bodies are streamed.
MAX_PARSED_BODY = 512 * 1024 * 1024


def _ssl_context(config: Config) -> ssl.SSLContext | bool | None:
    if not config.es_url.startswith("https"):
        return None
    if not config.es_verify_certs:
        return False
    return ssl.create_default_context(cafile=config.es_ca_file)


def build_app(config: Config) -> web.Application:
    app = web.Application(middlewares=[es_errors, node_media_types], client_max_size=MAX_PARSED_BODY)
    app["config"] = config
    app["upstream"] = Upstream(config.es_url, ssl=_ssl_context(config))
    app[MEDIA_TYPE_CHECK] = MediaTypeCheck(app["upstream"])

    inference.setup(app)
    pipelines.setup(app)
    search.setup(app)
    writes.setup(app)
    mappings.setup(app)
    reindex.setup(app)
    ops.setup(app)
    security.setup(app)

    app.router.add_route("GET", "/", root.root_handler)
    app.router.add_route("HEAD", "/", root.root_handler)
    app.router.add_get("/_sidecar/health", health.health_handler)
    # Everything else goes to Elasticsearch untouched.
    app.router.add_route("*", "/{tail:.*}", proxy_handler)

    async def close_upstream(app: web.Application) -> None:
        await app["upstream"].close()

    app.on_cleanup.append(close_upstream)
    return app
