"""The typed keys under which the composition root (:mod:`sidecar.app`) registers the
sidecar's long-lived objects; handlers read them as ``request.app[KEY]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

    from ..config import Config
    from ..endpoints.manager import InferenceEndpoints
    from ..es.node import NodeVersion
    from ..es.upstream import Upstream
    from ..ingest import Pipelines
    from ..protocol.registry import Services
    from ..runtime import ModelManager
    from ..semantic.metadata import SemanticIndices
    from ..semantic.search import SemanticSearch
    from ..tasks import Tasks
    from ..trained_models import TrainedModels
    from ..writes.fill import SemanticFiller

CONFIG: web.AppKey[Config] = web.AppKey("config")
UPSTREAM: web.AppKey[Upstream] = web.AppKey("upstream")
# The sidecar's own client (its hidden indices, mappings, node facts).
ES: web.AppKey[AsyncElasticsearch] = web.AppKey("es")
NODE_VERSION: web.AppKey[NodeVersion] = web.AppKey("node_version")
MODELS: web.AppKey[ModelManager] = web.AppKey("models")
SERVICES: web.AppKey[Services] = web.AppKey("services")
ENDPOINTS: web.AppKey[InferenceEndpoints] = web.AppKey("endpoints")
SEMANTIC_INDICES: web.AppKey[SemanticIndices] = web.AppKey("semantic_indices")
PIPELINES: web.AppKey[Pipelines] = web.AppKey("pipelines")
FILLER: web.AppKey[SemanticFiller] = web.AppKey("semantic_filler")
SEARCH: web.AppKey[SemanticSearch] = web.AppKey("semantic_search")
TASKS: web.AppKey[Tasks] = web.AppKey("tasks")
TRAINED_MODELS: web.AppKey[TrainedModels] = web.AppKey("trained_models")
