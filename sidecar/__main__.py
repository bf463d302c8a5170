"""``es-inference-sidecar`` / ``python -m sidecar``."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from . import logs
from .app import build_app
from .config import from_args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "reindex":
        from .cli_reindex import main as reindex_main

        return reindex_main(argv[1:])
    config = from_args(argv)
    logs.setup(config.log_level)
    log = logging.getLogger("sidecar")
    app = build_app(config)
    log.info(
        "sidecar listening",
        extra={"fields": {"url": f"http://{config.host}:{config.port}", "elasticsearch": config.es_url}},
    )
    print(f"es-inference-sidecar listening on http://{config.host}:{config.port} "
          f"(Elasticsearch: {config.es_url})", flush=True)
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        access_log_class=logs.AccessLogger,
        print=None,
        shutdown_timeout=30,
        # A client that goes away cancels the work done for it (inference included).
        handler_cancellation=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
