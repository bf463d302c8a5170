"""The composition root: every long-lived object of the sidecar is built here, once, in
dependency order, registered under its typed key (:mod:`sidecar.api.keys`) and closed in
reverse order when the application stops. Handlers receive what they need from these keys;
no other module builds shared state.

Routes come from one table, :mod:`sidecar.api.routes`, with the pass-through to Elasticsearch
last; each handler is put behind the front door (:mod:`sidecar.api.front`: metrics,
Elasticsearch-shaped errors, the node's verdict on ``compatible-with`` headers, the security
checks) as it is registered.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from . import metrics
from .api import routes
from .api.compat import MEDIA_TYPE_CHECK, MediaTypeCheck
from .api.keys import (
    CONFIG,
    ENDPOINTS,
    ES,
    FILLER,
    MODELS,
    NODE_VERSION,
    PIPELINES,
    SEARCH,
    SEMANTIC_INDICES,
    SERVICES,
    TASKS,
    TRAINED_MODELS,
    UPSTREAM,
)
from .config import Config
from .es.upstream import Upstream
from .security import AUTHORIZER, FENCE, Authorizer, Fence, IndexFence

log = logging.getLogger("sidecar")

# The largest body the sidecar itself parses (its own APIs); proxied bodies are streamed.
MAX_PARSED_BODY = 512 * 1024 * 1024


def _ssl_context(config: Config) -> ssl.SSLContext | bool | None:
    if not config.es_url.startswith("https"):
        return None
    if not config.es_verify_certs:
        return False
    return ssl.create_default_context(cafile=config.es_ca_file)


async def _parts(app: web.Application) -> AsyncIterator[None]:
    """Builds the objects that need the running event loop, then closes them at shutdown."""
    from .endpoints.manager import InferenceEndpoints
    from .endpoints.secrets import SecretBox
    from .endpoints.store import EndpointStore
    from .es.client import sidecar_client
    from .es.node import NodeVersion
    from .ingest import Pipelines
    from .ingest.store import index_name
    from .protocol.registry import ServiceContext, Services
    from .runtime import ModelManager
    from .semantic.metadata import SemanticIndices
    from .semantic.search import SemanticSearch
    from .tasks import Tasks
    from .trained_models import TrainedModels, TrainedModelStore
    from .writes.fill import EmbeddingCache, SemanticFiller

    config = app[CONFIG]
    es = app[ES] = sidecar_client(config)
    node_version = app[NODE_VERSION] = NodeVersion(es)
    models = app[MODELS] = ModelManager(
        aliases=config.model_aliases, cache_dir=config.model_cache_dir, max_batch_size=config.max_batch_size,
        max_batch_wait_ms=config.max_batch_wait_ms, max_queue=config.max_queue, device=config.device,
        backend=config.backend,
    )
    services = app[SERVICES] = Services(ServiceContext(config=config, models=models))
    store = EndpointStore(es, SecretBox(config.secrets_key_bytes()), prefix=config.system_index_prefix,
                          ttl_s=config.registry_ttl_s)
    endpoints = app[ENDPOINTS] = InferenceEndpoints(
        store, services, default_timeout_s=config.inference_timeout_s, node_version=node_version)
    semantic = app[SEMANTIC_INDICES] = SemanticIndices(es, ttl_s=config.registry_ttl_s)
    pipelines = app[PIPELINES] = Pipelines(
        es, endpoints, index=index_name(config.system_index_prefix),
        ttl_s=config.registry_ttl_s, settings_ttl_s=config.registry_ttl_s)
    # An endpoint in use by a pipeline or a semantic_text field is not deleted without force.
    endpoints.reference_finders += [pipelines.references, semantic.indexes_using]
    app[FILLER] = SemanticFiller(endpoints.lookup, endpoints.inference,
                                 record_settings=semantic.record_model_settings,
                                 cache=EmbeddingCache())
    app[SEARCH] = SemanticSearch(endpoints=endpoints, semantic=semantic, es=es, upstream=app[UPSTREAM],
                                 timeout_s=config.inference_timeout_s, node_version=node_version)
    tasks = app[TASKS] = Tasks(es)
    # Models uploaded through Eland and built-in model ids; recorded deployments start again.
    trained = app[TRAINED_MODELS] = TrainedModels(
        TrainedModelStore(es, prefix=f"{config.system_index_prefix}-trained-models"), models,
        cache_dir=config.model_cache_dir, default_timeout_s=config.inference_timeout_s)
    # Started in the background; kept on the object so that whoever needs it settled can wait.
    restoring = trained.restoring = asyncio.ensure_future(trained.restore())
    endpoints.inference.fallbacks.append(trained.as_endpoint)
    trained.reference_finders.append(pipelines.references)
    with metrics.reporting(models):
        try:
            yield
        finally:
            restoring.cancel()
            await tasks.close()
            await asyncio.gather(services.close(), models.close(), es.close(), return_exceptions=True)
            await app[UPSTREAM].close()


def build_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=MAX_PARSED_BODY)
    app[CONFIG] = config
    upstream = app[UPSTREAM] = Upstream(config.es_url, ssl=_ssl_context(config))
    app[MEDIA_TYPE_CHECK] = MediaTypeCheck(upstream)
    app[AUTHORIZER] = Authorizer(upstream)
    app[FENCE] = Fence(IndexFence.for_prefix(config.system_index_prefix))
    app.cleanup_ctx.append(_parts)
    routes.register(app.router)
    return app
