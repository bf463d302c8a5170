"""``es-inference-sidecar`` / ``python -m sidecar``."""

from __future__ import annotations

import os

# OpenMP threads that have finished a parallel region sleep instead of spinning for the next
# one. Spinning is what OpenMP does by default, and on a machine where anything else runs
# (Elasticsearch, another worker) the spinning threads of one query steal the cores the next
# one needs: with one busy neighbour process, single-query p99 went from 5 ms to 200+ ms.
# Read by libgomp when torch loads, so it is set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import asyncio  # noqa: E402
import logging  # noqa: E402
import ssl  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from aiohttp import web  # noqa: E402

from . import logs, workers  # noqa: E402
from .config import Config, from_args  # noqa: E402


def server_ssl_context(config: Config) -> ssl.SSLContext | None:
    """HTTPS for the listener when ``--tls-cert``/``--tls-key`` are given."""
    if not config.tls_cert and not config.tls_key:
        return None
    if not (config.tls_cert and config.tls_key):
        raise SystemExit("es-inference-sidecar: --tls-cert and --tls-key must be given together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


def event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """A new event loop of the configured kind (``auto``: uvloop when it is installed)."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise SystemExit("es-inference-sidecar: --event-loop uvloop needs the uvloop package") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "reindex":
        from .cli_reindex import main as reindex_main

        return reindex_main(argv[1:])
    if argv and argv[0] == "pipelines":
        from .cli_pipelines import main as pipelines_main

        return pipelines_main(argv[1:])
    if argv and argv[0] == "rotate-secrets":
        from .cli_secrets import main as rotate_main

        return rotate_main(argv[1:])
    from .app import build_app  # after the subcommands: they need none of the server

    config = from_args(argv)
    if config.workers < 1:
        raise SystemExit("es-inference-sidecar: --workers must be at least 1")
    if config.workers > 1 and not workers.is_worker():
        print(f"es-inference-sidecar: starting {config.workers} workers on {config.host}:{config.port}", flush=True)
        return workers.supervise(argv, config.workers)
    from .runtime.models import set_default_dtype

    set_default_dtype(config.dtype)
    ssl_context = server_ssl_context(config)
    scheme = "https" if ssl_context else "http"
    logs.setup(config.log_level)
    log = logging.getLogger("sidecar")
    app = build_app(config)
    app.on_startup.append(_settle_gc)  # after the start-up of every part
    log.debug("configuration", extra={"fields": {"config": config.redacted()}})
    log.info(
        "sidecar listening",
        extra={"fields": {"url": f"{scheme}://{config.host}:{config.port}", "elasticsearch": config.es_url}},
    )
    print(f"es-inference-sidecar listening on {scheme}://{config.host}:{config.port} "
          f"(Elasticsearch: {config.es_url})", flush=True)
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        ssl_context=ssl_context,
        **_access_log(config.access_log),
        print=None,
        shutdown_timeout=30,
        # A client that goes away cancels the work done for it (inference included).
        handler_cancellation=True,
        loop=event_loop(config.event_loop),
        # Workers of one --workers set share the port; the kernel spreads connections over them.
        reuse_port=workers.is_worker() or None,
    )
    return 0


async def _settle_gc(app: web.Application) -> None:
    from . import gc_tuning

    gc_tuning.settle()


def _access_log(mode: str) -> dict[str, Any]:
    from .proxy import PASSED_THROUGH

    logger_class = logs.access_logger(mode, PASSED_THROUGH)
    return {"access_log": None} if logger_class is None else {"access_log_class": logger_class}


if __name__ == "__main__":
    sys.exit(main())
